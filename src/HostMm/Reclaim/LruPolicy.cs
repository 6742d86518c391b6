namespace Hypervisor.HostMm.Reclaim;

/// <summary>How reclaim ages pages and chooses what to evict.</summary>
public enum LruPolicy
{
    /// <summary>
    /// The classic two-list active/inactive LRU: aging walks each candidate's mappings through the reverse map,
    /// test-and-clears each PTE's accessed bit and asks the secondary MMUs with <c>clear_flush_young</c>
    /// (<c>folio_referenced_one</c>), then decides with <c>folio_check_references</c>' table.
    /// </summary>
    Classic,

    /// <summary>
    /// The multi-gen LRU (<c>lru_gen</c>): aging walks page tables in batches and asks the secondary MMUs with
    /// <c>clear_young</c> (no flush), counting guest-only accesses as Linux does since 6.12.
    /// </summary>
    MultiGen,
}
