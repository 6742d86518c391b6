using Hypervisor.GuestMmu.Mmu;

namespace Hypervisor.Vmm.Demo.Swap;

/// <summary>One run of phase 3 of the swap demo: phase 1's memtest under one of the EPT MMU's dirty tracking policies.</summary>
public sealed record DirtyPolicyRow
{
    /// <summary>The policy the run used.</summary>
    public required DirtyTrackingPolicy Policy { get; init; }

    /// <summary>Pages written to swap during the guest's run.</summary>
    public required long Pswpout { get; init; }

    /// <summary>Pages read from swap during the guest's run.</summary>
    public required long Pswpin { get; init; }

    /// <summary>Frames the fault path marked dirty when it mapped them writable (map-time policy).</summary>
    public required long DirtyMarkedOnMap { get; init; }

    /// <summary>Dirty sptes whose frames a zap or age reported to the host (zap-time policy).</summary>
    public required long DirtyPropagated { get; init; }

    /// <summary>True when the guest verified every word.</summary>
    public required bool GuestPassed { get; init; }

    /// <summary>Wall-clock time of the run.</summary>
    public required TimeSpan Elapsed { get; init; }
}
