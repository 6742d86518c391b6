using Hypervisor.HostMm.Frames;

namespace Hypervisor.HostMm;

/// <summary>A snapshot of host-wide counters.</summary>
public readonly record struct HostStats
{
    /// <summary>Frame arena counters (free frames per node, allocations, frees…).</summary>
    public HostMemoryStats Memory { get; init; }

    /// <summary>Live processes.</summary>
    public int Processes { get; init; }

    /// <summary>Resident pages over all processes.</summary>
    public long RssPages { get; init; }
}
