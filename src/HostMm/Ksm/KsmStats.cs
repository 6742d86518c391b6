namespace Hypervisor.HostMm.Ksm;

/// <summary>A snapshot of the KSM scanner's counters, under Linux's <c>/sys/kernel/mm/ksm/</c> names.</summary>
public sealed record KsmStats
{
    /// <summary><c>pages_shared</c>: KSM pages in use (stable nodes and dups with at least one rmap item).</summary>
    public long PagesShared { get; init; }

    /// <summary><c>pages_sharing</c>: further rmap items that map those KSM pages (pages saved).</summary>
    public long PagesSharing { get; init; }

    /// <summary><c>pages_unshared</c>: rmap items in the unstable tree (of this pass or, until their next visit, the last one).</summary>
    public long PagesUnshared { get; init; }

    /// <summary><c>pages_volatile</c>: rmap items in no tree (changing too fast, or waiting for a second visit); never negative.</summary>
    public long PagesVolatile { get; init; }

    /// <summary><c>full_scans</c>: completed passes over all mergeable memory.</summary>
    public long FullScans { get; init; }

    /// <summary><c>general_profit</c> in bytes: (pages_sharing + ksm_zero_pages) × 4096 − rmap_items × 64.</summary>
    public long GeneralProfit { get; init; }

    /// <summary><c>ksm_zero_pages</c>: PTEs that map the zero page because KSM placed it there (use_zero_pages).</summary>
    public long KsmZeroPages { get; init; }

    /// <summary><c>stable_node_chains</c>: stable nodes over max_page_sharing that hold several dups.</summary>
    public long StableNodeChains { get; init; }

    /// <summary><c>stable_node_dups</c>: the KSM pages (dups) held by those chains.</summary>
    public long StableNodeDups { get; init; }

    /// <summary><c>pages_scanned</c>: pages compared (cmp_and_merge_page calls).</summary>
    public long PagesScanned { get; init; }

    /// <summary><c>pages_skipped</c>: pages smart scan skipped.</summary>
    public long PagesSkipped { get; init; }

    /// <summary>Pages whose mapping was replaced by a KSM page or the zero page (replace_page successes), in total.</summary>
    public long Merges { get; init; }

    /// <summary>rmap items that exist now (one per scanned (process, address)).</summary>
    public long RmapItems { get; init; }
}
