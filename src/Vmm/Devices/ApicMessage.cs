namespace Hypervisor.Vmm.Devices;

/// <summary>An interrupt message as the ICR encodes it (one value per IPI; no allocation).</summary>
/// <param name="Vector">The vector (fixed, lowest priority; the start page for start-up).</param>
/// <param name="Mode">The delivery mode.</param>
/// <param name="Logical">True for a logical destination (matched against LDR/DFR), false for a physical APIC id.</param>
/// <param name="Assert">The level bit (14): false with an INIT is the "INIT level de-assert" message, which does nothing.</param>
/// <param name="LevelTriggered">The trigger-mode bit (15).</param>
/// <param name="Shorthand">The destination shorthand.</param>
/// <param name="Destination">The destination: 8 bits in xAPIC mode, 32 in x2APIC mode.</param>
public readonly record struct ApicMessage(
    byte Vector,
    ApicDeliveryMode Mode,
    bool Logical,
    bool Assert,
    bool LevelTriggered,
    ApicShorthand Shorthand,
    uint Destination)
{
    /// <summary>Decodes ICR low bits and a destination.</summary>
    /// <param name="icrLow">ICR bits 31:0.</param>
    /// <param name="destination">The destination field (already shifted down).</param>
    /// <returns>The message.</returns>
    public static ApicMessage FromIcr(uint icrLow, uint destination) => new(
        (byte)icrLow,
        (ApicDeliveryMode)((icrLow >> 8) & 7),
        (icrLow & (1u << 11)) != 0,
        (icrLow & (1u << 14)) != 0,
        (icrLow & (1u << 15)) != 0,
        (ApicShorthand)((icrLow >> 18) & 3),
        destination);
}
