using Hypervisor.HostMm.Frames;
using Hypervisor.HostMm.Reclaim;
using Hypervisor.HostMm.Swap;

namespace Hypervisor.HostMm;

/// <summary>How a simulated host is built.</summary>
public sealed record HostOptions
{
    /// <summary>Host RAM and NUMA layout.</summary>
    public required HostMemoryOptions Memory { get; init; }

    /// <summary>
    /// Issue the historical <c>change_pte</c> notifier (Linux 2.6.32–6.9) when a COW break or KSM merge
    /// installs a new PTE, inside the start/end pair as Linux did from 2012 on. Off by default, as in Linux 6.10+.
    /// </summary>
    public bool LegacyChangePte { get; init; }

    /// <summary>
    /// The notifier contract every process's chain and this host's invalidations follow: <see cref="NotifierEra.Current"/>
    /// (the default) or a historical era that re-creates a race the current contract closed, for demonstrations
    /// (<c>hv demo history</c>). Under <see cref="NotifierEra.NoRangeStartEnd"/> the host issues no range start: it
    /// announces each change once, after it (<see cref="MmuNotifierChain.InvalidateRange"/>), and a zap's announcement
    /// comes after its frames were freed.
    /// </summary>
    public NotifierEra NotifierEra { get; init; }

    /// <summary>The swap device, or null (the default) for a host without swap.</summary>
    public SwapOptions? Swap { get; init; }

    /// <summary>How the host reclaims memory.</summary>
    public ReclaimOptions Reclaim { get; init; } = new();

    /// <summary>Transparent huge pages: where anonymous faults map 2 MiB pages with a huge PMD (never by default).</summary>
    public ThpMode TransparentHugePages { get; init; } = ThpMode.Never;
}
