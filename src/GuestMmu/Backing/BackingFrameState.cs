namespace Hypervisor.GuestMmu.Backing;

/// <summary>What the host says about a frame that an spte maps (<see cref="IGuestMemoryBacking.QueryFrame"/>).</summary>
public enum BackingFrameState
{
    /// <summary>The frame is allocated.</summary>
    InUse,

    /// <summary>The frame is free: an spte that maps it is a use-after-free in waiting.</summary>
    Free,

    /// <summary>The number is beyond host RAM.</summary>
    OutOfRange,
}
