namespace Hypervisor.HostMm.Reclaim;

/// <summary>
/// A host's reclaim and swap counters, under the names of Linux's <c>/proc/vmstat</c> and <c>/proc/meminfo</c>
/// (<c>reference/pressure.md</c> §7).
/// </summary>
public readonly record struct ReclaimStats
{
    /// <summary>Inactive pages scanned by the background reclaimer (<c>pgscan_kswapd</c>).</summary>
    public long PgscanKswapd { get; init; }

    /// <summary>Inactive pages scanned by allocating threads (<c>pgscan_direct</c>).</summary>
    public long PgscanDirect { get; init; }

    /// <summary>Pages reclaimed by the background reclaimer (<c>pgsteal_kswapd</c>).</summary>
    public long PgstealKswapd { get; init; }

    /// <summary>Pages reclaimed by allocating threads (<c>pgsteal_direct</c>).</summary>
    public long PgstealDirect { get; init; }

    /// <summary>Inactive pages scanned in all (<c>pgscan</c> = kswapd + direct).</summary>
    public long Pgscan => PgscanKswapd + PgscanDirect;

    /// <summary>Pages reclaimed in all (<c>pgsteal</c>).</summary>
    public long Pgsteal => PgstealKswapd + PgstealDirect;

    /// <summary>Active pages scanned for deactivation (<c>pgrefill</c>).</summary>
    public long Pgrefill { get; init; }

    /// <summary>Pages moved to the active list (<c>pgactivate</c>).</summary>
    public long Pgactivate { get; init; }

    /// <summary>Pages moved to the inactive list (<c>pgdeactivate</c>).</summary>
    public long Pgdeactivate { get; init; }

    /// <summary>Lazily freed (MADV_FREE) pages discarded without I/O (<c>pglazyfreed</c>).</summary>
    public long Pglazyfreed { get; init; }

    /// <summary>Pages written to swap (<c>pswpout</c>).</summary>
    public long Pswpout { get; init; }

    /// <summary>Pages read from swap (<c>pswpin</c>).</summary>
    public long Pswpin { get; init; }

    /// <summary>Faults that had to read from swap (<c>pgmajfault</c>).</summary>
    public long Pgmajfault { get; init; }

    /// <summary>Swap faults that found the page in the swap cache (minor faults, no I/O).</summary>
    public long SwapCacheHits { get; init; }

    /// <summary>Pages read ahead of a fault (<c>swap_ra</c>).</summary>
    public long SwapRa { get; init; }

    /// <summary>Read-ahead pages a later fault used (<c>swap_ra_hit</c>).</summary>
    public long SwapRaHit { get; init; }

    /// <summary>Refaults of evicted anonymous pages (<c>workingset_refault_anon</c>).</summary>
    public long WorkingsetRefaultAnon { get; init; }

    /// <summary>Refaults close enough to be activated at once (<c>workingset_activate_anon</c>).</summary>
    public long WorkingsetActivateAnon { get; init; }

    /// <summary>Refaults of pages that were in the workingset when evicted (<c>workingset_restore_anon</c>).</summary>
    public long WorkingsetRestoreAnon { get; init; }

    /// <summary>Clean swap-cache pages dropped without I/O (a valid copy was already on swap).</summary>
    public long SwapCacheReclaimed { get; init; }

    /// <summary>Young ops sent to secondary MMUs while aging (<c>clear_flush_young</c> or <c>clear_young</c> calls).</summary>
    public long SecondaryYoungQueries { get; init; }

    /// <summary>Secondary answers of "young" (counted whether or not <see cref="ReclaimOptions.SecondaryAging"/> lets them count).</summary>
    public long SecondaryYoungHits { get; init; }

    /// <summary>Allocations that had to reclaim first (<c>allocstall</c>).</summary>
    public long Allocstall { get; init; }

    /// <summary>Allocations refused after reclaim freed nothing (out of memory).</summary>
    public long OomFailures { get; init; }

    /// <summary>Swap writes that failed; the page stayed resident and dirty.</summary>
    public long SwapWriteErrors { get; init; }

    /// <summary>Swap reads that failed or whose checksum did not match: memory failures reported to the faulting process.</summary>
    public long MemoryFailures { get; init; }

    /// <summary>Background reclaimer steps that found work to do.</summary>
    public long KswapdRuns { get; init; }

    /// <summary>Multi-gen LRU agings: new youngest generations opened (Linux's <c>max_seq</c> increments).</summary>
    public long MglruAgings { get; init; }

    /// <summary>Pages the multi-gen aging walk found young and moved to the youngest generation.</summary>
    public long MglruWalkPromotions { get; init; }

    /// <summary>Neighbouring pages the multi-gen look-around found young and moved to the youngest generation.</summary>
    public long MglruLookAroundPromotions { get; init; }

    /// <summary>
    /// Pages of the oldest generation that multi-gen eviction kept, moving them up a generation, because the refault
    /// controller protects their tier (or they are workingset pages with a full reference counter).
    /// </summary>
    public long MglruTierProtections { get; init; }

    /// <summary>Pages under asynchronous writeback now (<c>nr_writeback</c>): 0 whenever no <c>madvise(MADV_PAGEOUT)</c> is running.</summary>
    public long NrWriteback { get; init; }

    /// <summary>Pages whose pageout went through the asynchronous writeback (written, or failed and kept).</summary>
    public long WritebackAsyncPages { get; init; }

    /// <summary>Pages in the swap cache now (<c>SwapCached</c>).</summary>
    public long SwapCachedPages { get; init; }

    /// <summary>Anonymous pages on the active lists now (<c>Active(anon)</c>).</summary>
    public long ActiveAnonPages { get; init; }

    /// <summary>Anonymous pages on the inactive lists now (<c>Inactive(anon)</c>).</summary>
    public long InactiveAnonPages { get; init; }

    /// <summary>Swap slots in the area (<c>SwapTotal</c> in pages; 0 without swap).</summary>
    public long SwapTotalPages { get; init; }

    /// <summary>Free swap slots (<c>SwapFree</c> in pages).</summary>
    public long SwapFreePages { get; init; }
}
