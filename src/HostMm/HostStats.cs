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

    /// <summary>Write (or unshare) faults that copied a KSM page (<c>cow_ksm</c>).</summary>
    public long CowKsm { get; init; }

    /// <summary>Swap-ins that gave a process its own copy of a page another process's mapping owns (<c>ksm_swpin_copy</c>).</summary>
    public long KsmSwpinCopy { get; init; }
}
