namespace Hypervisor.HostMm.Huge;

/// <summary>khugepaged's counters, under Linux's names.</summary>
public readonly record struct KhugepagedStats
{
    /// <summary><c>thp_collapse_alloc</c> / <c>pages_collapsed</c>: ranges collapsed into a huge page.</summary>
    public long PagesCollapsed { get; init; }

    /// <summary><c>thp_collapse_alloc_failed</c>: collapses that found no whole free 2 MiB block.</summary>
    public long CollapseAllocFailed { get; init; }

    /// <summary><c>full_scans</c>: passes over every process's eligible memory.</summary>
    public long FullScans { get; init; }

    /// <summary>2 MiB ranges looked at.</summary>
    public long RangesScanned { get; init; }

    /// <summary>Ranges not collapsed, by reason (every <see cref="CollapseResult"/> but <see cref="CollapseResult.Collapsed"/>).</summary>
    public IReadOnlyDictionary<CollapseResult, long> Skipped { get; init; }
}
