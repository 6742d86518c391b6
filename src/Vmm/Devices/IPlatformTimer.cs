namespace Hypervisor.Vmm.Devices;

/// <summary>
/// A platform device that raises interrupts at times of the platform clock (the 8254 PIT's channel 0, the RTC's
/// periodic and update interrupts). The boot vCPU consults every timer of its <see cref="PlatformTimers"/> at its
/// event checks and when it halts, so the device fires at the right virtual time without a thread of its own.
/// </summary>
/// <remarks>Implementations are thread-safe: the boot vCPU calls these while other vCPUs may access the device's ports.</remarks>
public interface IPlatformTimer
{
    /// <summary>
    /// The platform-clock time at which the device next changes an interrupt line, or <see cref="long.MaxValue"/> when
    /// nothing is armed. Must not be earlier than a time the device has already been <see cref="Fire"/>d at, unless
    /// the guest has reprogrammed it since (which calls <see cref="PlatformTimers.Changed"/>).
    /// </summary>
    /// <param name="now">The platform clock now.</param>
    long NextDeadline(long now);

    /// <summary>
    /// True when the event at <see cref="NextDeadline"/> would interrupt a CPU: the device's line is routed and
    /// unmasked. A HLT with interrupts enabled skips forward to the deadline only when this holds.
    /// </summary>
    bool CanInterrupt { get; }

    /// <summary>Performs everything due at or before <paramref name="now"/> (raising lines; events missed in a long gap coalesce).</summary>
    /// <param name="now">The platform clock now.</param>
    void Fire(long now);
}
