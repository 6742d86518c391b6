namespace Hypervisor.HostMm.Frames;

/// <summary>
/// Per-frame state bits, after Linux's <c>page-&gt;flags</c>. <see cref="Free"/> and
/// <see cref="Poisoned"/> belong to <see cref="HostMemory"/>'s allocator; the other bits belong to the
/// mechanism named in their summary and are changed atomically (see <see cref="HostMemory.SetFlags"/>).
/// </summary>
[Flags]
public enum FrameFlags : uint
{
    /// <summary>No bit set.</summary>
    None = 0,

    /// <summary>The frame is on its node's free list (PageBuddy). Set and cleared only by the allocator.</summary>
    Free = 1u << 0,

    /// <summary>The frame held only zero bytes when it was handed out (a hint: stale after the first write).</summary>
    Zeroed = 1u << 1,

    /// <summary>Contents differ from the backing store (swap slot); must be written before reuse (PG_dirty).</summary>
    Dirty = 1u << 2,

    /// <summary>Referenced since the last aging pass (PG_referenced); set by faults and secondary MMUs.</summary>
    Accessed = 1u << 3,

    /// <summary>On an LRU list; the frame's LRU links are then in use (PG_lru).</summary>
    Lru = 1u << 4,

    /// <summary>On the active rather than the inactive LRU list (PG_active).</summary>
    Active = 1u << 5,

    /// <summary>Never reclaimable while so marked (mlock, pinned; PG_unevictable).</summary>
    Unevictable = 1u << 6,

    /// <summary>Taken off the LRU by reclaim or migration, which owns it until put back (isolate_lru_page).</summary>
    Isolated = 1u << 7,

    /// <summary>Anonymous memory: backed by swap, not by a file (PG_swapbacked).</summary>
    SwapBacked = 1u << 8,

    /// <summary>In the swap cache; <see cref="FrameInfo.SwapSlot"/> holds the slot (PG_swapcache).</summary>
    SwapCache = 1u << 9,

    /// <summary>Swap I/O in flight (PG_writeback).</summary>
    Writeback = 1u << 10,

    /// <summary>Reclaim wants the frame freed as soon as writeback completes (PG_reclaim).</summary>
    Reclaim = 1u << 11,

    /// <summary>Contents are valid (read from swap completed; PG_uptodate).</summary>
    Uptodate = 1u << 12,

    /// <summary>A KSM page: <see cref="FrameInfo.RmapIndex"/> is a stable-tree node, mappings are read-only (PageKsm).</summary>
    Ksm = 1u << 13,

    /// <summary>The page lock (PG_locked): taken with <see cref="HostMemory.TestAndSetFlag"/>, a sleeping lock in Linux.</summary>
    Locked = 1u << 14,

    /// <summary>
    /// Audit mode: the frame was filled with <see cref="HostMemory.PoisonByte"/> when freed. Set and cleared
    /// only by the allocator.
    /// </summary>
    Poisoned = 1u << 15,

    /// <summary>A memory failure (swap read error) hit the frame's contents; never hand them to anyone (PG_hwpoison).</summary>
    HardwareError = 1u << 16,

    /// <summary>Not allocatable and not freeable: quarantined after a use-after-free, or kept by the host (PG_reserved).</summary>
    Reserved = 1u << 17,

    /// <summary>Destination of a migration in progress; contents not yet valid.</summary>
    MigrationTarget = 1u << 18,

    /// <summary>
    /// The frame is a host page table (PML4, PDPT, PD or PTE table) of a
    /// <see cref="PageTables.HostPageTable"/> (PG_table); while it is one, <see cref="Locked"/> is its
    /// page-table lock rather than a page lock.
    /// </summary>
    PageTable = 1u << 19,

    /// <summary>Read from swap ahead of a fault that has not come yet (PG_readahead); the first fault that finds it counts a readahead hit.</summary>
    Readahead = 1u << 20,

    /// <summary>Was on the active list when last deactivated: part of the workingset (PG_workingset); a refault of it counts a restore.</summary>
    Workingset = 1u << 21,

    /// <summary>
    /// Not a flag but a 3-bit field (bits 22–24, Linux's <c>LRU_GEN_MASK</c>): while the frame is on a multi-gen LRU
    /// list, its generation's list index plus one (1–4); 0 when it is on no generation list. Changed only through
    /// <c>FrameInfo.SetGeneration</c> (shift <see cref="FrameInfo.GenerationShift"/>), under the owning lruvec's lock.
    /// </summary>
    GenerationMask = 7u << 22,

    /// <summary>
    /// A hint that a huge leaf maps the frame (it is one of the 512 frames of a transparent huge page): reclaim splits the
    /// huge mappings before it unmaps the frame, and aging asks the huge leaf. Set when a huge leaf is installed; cleared
    /// only at allocation (a split leaves it, and the next look finds no huge leaf).
    /// </summary>
    PmdMapped = 1u << 25,

    /// <summary>
    /// The huge page's accessed bit, handed to this subpage when aging its first frame cleared the huge leaf's accessed
    /// bit (Linux ages a huge page as one folio; here each frame ages on its own, so the first frame's look is shared).
    /// </summary>
    PmdYoung = 1u << 26,

    /// <summary>
    /// Not a flag but a 2-bit field (bits 27–28, Linux's <c>LRU_REFS_MASK</c>): under the multi-gen LRU, the accesses
    /// through references (get-user-pages) counted after the first, which <see cref="Accessed"/> records; it saturates at 3,
    /// after which a further access sets <see cref="Workingset"/>. Read with <c>FrameInfo.LruRefs</c>; the access count
    /// picks the page's tier (<see cref="Reclaim.LruTiers"/>).
    /// </summary>
    LruRefsMask = 3u << 27,
}
