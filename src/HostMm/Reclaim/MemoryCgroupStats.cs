namespace Hypervisor.HostMm.Reclaim;

/// <summary>A memory cgroup's counters (cgroup v2's <c>memory.current</c>, <c>memory.max</c>, <c>memory.peak</c>, <c>memory.events</c>).</summary>
public readonly record struct MemoryCgroupStats
{
    /// <summary>Pages charged now.</summary>
    public long UsagePages { get; init; }

    /// <summary>The limit in pages (<see cref="MemoryCgroup.Unlimited"/> for none).</summary>
    public long MaxPages { get; init; }

    /// <summary>The highest usage seen.</summary>
    public long PeakPages { get; init; }

    /// <summary>Charges that found the group at its limit (<c>memory.events max</c>).</summary>
    public long MaxEvents { get; init; }

    /// <summary>Charges that failed because reclaim freed nothing (<c>memory.events oom</c>).</summary>
    public long OomEvents { get; init; }
}
