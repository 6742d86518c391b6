using Hypervisor.HostMm.Reclaim;
using Hypervisor.HostMm.Swap;

namespace Hypervisor.Vmm.Machine;

/// <summary>
/// The host-memory side of a VM run under <see cref="VmOptions.HostMemoryBytes"/>: the limit, the policy, the swap
/// device, and the reclaim and swap counters under Linux's names (<see cref="ReclaimStats"/>), with the guest's resident
/// and swapped pages. Taken without stopping the vCPU: each figure is exact, the figures are not mutually consistent
/// while the VM runs.
/// </summary>
public sealed record HostMemorySnapshot
{
    /// <summary>The VM cgroup's limit (<c>memory.max</c>) in bytes.</summary>
    public required ulong LimitBytes { get; init; }

    /// <summary>The host's LRU policy.</summary>
    public required LruPolicy Policy { get; init; }

    /// <summary>Whether the secondary MMU's young answers count as references.</summary>
    public required bool SecondaryAging { get; init; }

    /// <summary>The swap device's name (<c>file:/tmp/…</c>, <c>zram</c>, <c>inject(…)</c>).</summary>
    public required string SwapDevice { get; init; }

    /// <summary>The compressed device's ratio of original to stored bytes (zram only; null for a file).</summary>
    public double? ZramCompressionRatio { get; init; }

    /// <summary>The host's reclaim and swap counters (<c>pswpin</c>, <c>pswpout</c>, <c>pgscan</c>, …).</summary>
    public required ReclaimStats Reclaim { get; init; }

    /// <summary>The VM cgroup's counters (<c>memory.current</c>, <c>memory.peak</c>, <c>memory.events</c>).</summary>
    public required MemoryCgroupStats Cgroup { get; init; }

    /// <summary>The swap area's counters (slots, checksum failures, read and write errors).</summary>
    public required SwapAreaStats Swap { get; init; }

    /// <summary>Guest pages resident in host memory now (the VM process's RSS).</summary>
    public required long ResidentPages { get; init; }

    /// <summary>Guest pages on swap now (the VM process's swap entries, <c>VmSwap</c>).</summary>
    public required long SwappedPages { get; init; }

    /// <summary>Steps of the VM's background reclaimer (<see cref="ReclaimDaemon"/>) that reclaimed something.</summary>
    public long KswapdSteps { get; init; }

    /// <summary>Pages written to swap (<c>pswpout</c>).</summary>
    public long Pswpout => Reclaim.Pswpout;

    /// <summary>Pages read from swap (<c>pswpin</c>).</summary>
    public long Pswpin => Reclaim.Pswpin;
}
