using System.Collections.Immutable;

namespace Hypervisor.HostMm.Frames;

/// <summary>
/// A snapshot of <see cref="HostMemory"/>'s counters. Taken without stopping allocators, so under
/// concurrent use the fields are each exact but not mutually consistent; when quiescent they are both.
/// </summary>
public readonly struct HostMemoryStats
{
    /// <summary>Frames of host RAM.</summary>
    public long TotalFrames { get; init; }

    /// <summary>Free frames over all nodes.</summary>
    public long FreeFrames { get; init; }

    /// <summary>Free frames per node, indexed by node id.</summary>
    public ImmutableArray<long> FreeFramesPerNode { get; init; }

    /// <summary>Frames handed out since start.</summary>
    public long Allocations { get; init; }

    /// <summary>Frames returned to the free lists since start.</summary>
    public long Frees { get; init; }

    /// <summary>Frames cleared for <see cref="AllocationFlags.Zero"/>.</summary>
    public long ZeroedFrames { get; init; }

    /// <summary>Allocations satisfied by a node other than the preferred one.</summary>
    public long FallbackAllocations { get; init; }

    /// <summary>Freed frames found written to (poison overwritten) on reallocation; each is quarantined.</summary>
    public long UseAfterFreeDetections { get; init; }

    /// <summary>Frames neither free nor quarantined: handed out and not yet freed.</summary>
    public long AllocatedFrames => TotalFrames - FreeFrames - UseAfterFreeDetections;
}
