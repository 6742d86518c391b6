namespace Hypervisor.GuestMmu.Mmu;

/// <summary>How a <see cref="TdpMmu"/> behaves.</summary>
public sealed record TdpMmuOptions
{
    /// <summary>
    /// EPT accessed/dirty bits on (default): aging tests and clears the accessed bit without unmapping.
    /// Off: aging makes young sptes access-tracked (no access allowed until the next fault restores them),
    /// as KVM does without A/D bits.
    /// </summary>
    public bool AccessedDirtyEnabled { get; init; } = true;
}
