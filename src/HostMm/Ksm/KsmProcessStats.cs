namespace Hypervisor.HostMm.Ksm;

/// <summary>One process's KSM counters (Linux's <c>/proc/&lt;pid&gt;/ksm_stat</c>).</summary>
public sealed record KsmProcessStats
{
    /// <summary><c>ksm_merging_pages</c>: this process's rmap items in the stable tree.</summary>
    public long MergingPages { get; init; }

    /// <summary><c>ksm_rmap_items</c>: this process's rmap items.</summary>
    public long RmapItems { get; init; }

    /// <summary><c>ksm_zero_pages</c>: this process's PTEs that map a KSM-placed zero page.</summary>
    public long ZeroPages { get; init; }

    /// <summary><c>ksm_process_profit</c> in bytes: (merging pages + zero pages) × 4096 − rmap items × 64.</summary>
    public long Profit { get; init; }
}
