using System.IO.Hashing;
using Hypervisor.HostMm.Frames;

namespace Hypervisor.HostMm.Ksm;

/// <summary>
/// The host's KSM daemon (Linux's ksmd, <c>mm/ksm.c</c>): scans the mergeable memory of every process on its scan list
/// in <see cref="Step(int)"/> batches and merges pages of equal content into one read-only KSM page, which a write
/// breaks copy-on-write. One per host (<see cref="Host.Ksm"/>).
/// </summary>
/// <remarks>
/// <para><b>Structures.</b> A slot per process on a round-robin scan list (a process that joins goes behind the cursor,
/// so the pass in progress reaches it last). An rmap item per scanned (process, address), by value in one struct array,
/// linked per process in address order. The <b>unstable tree</b> and the <b>stable tree</b> are indexed by the page's
/// full xxHash3-64 content hash (a hash table, not Linux's content-ordered rbtree), and every hit is confirmed by a
/// full compare of the two pages before anything is merged. The unstable tree is emptied at the end of each full scan.
/// The stable tree holds at most <see cref="MaxPageSharing"/> sharers per KSM page; past that, a chain of dups.</para>
/// <para><b>Visit of a page.</b> The checksum (the same hash) is compared with the last visit's: a changed page is only
/// recorded (so a new item's first visit only records it, and the second is its first candidate). Then: the zero
/// page (with <see cref="UseZeroPages"/>), the stable tree, the unstable tree, as Linux's <c>cmp_and_merge_page</c>.
/// Merging is <c>write_protect_page</c> then <c>replace_page</c>, each in its own notifier start(Clear)/end over the one
/// page, in the order of <c>reference/mmu-notifier.md</c> §3, with the GUP-pin check and a final compare of the two
/// write-protected pages under the page lock.</para>
/// <para><b>Locks.</b> <c>_scanLock</c> (ksm_thread_mutex) serialises steps and run changes; order: scan lock → mmap
/// lock (read) of the process being scanned → another process's mmap lock, taken only without waiting → page lock
/// (only tried) → invalidation → page-table lock. <c>_lock</c> is a leaf: it guards the scan list's membership, the
/// stable nodes' sharer lists and the counters, and is never held while taking another lock, so munmap, fork, exit and
/// reclaim (which hold mmap or page locks) may take it. rmap items are changed only by the scanner. As in Linux, a
/// munmap, mremap or copy-on-write break leaves the items behind; the scanner drops them when its pass reaches them
/// (and drops a process's items when it finds the process exited), and a stable node whose KSM page was freed is
/// pruned when the scanner next looks it up.</para>
/// </remarks>
public sealed partial class KsmScanner
{
    /// <summary>The size Linux charges per rmap item in general_profit (sizeof(struct ksm_rmap_item) on 64-bit).</summary>
    public const int RmapItemBytes = 64;

    private const int NoNode = -1;

    private readonly Host _host;
    private readonly HostMemory _memory;
    private readonly Lock _scanLock = new();
    private readonly Lock _lock = new();
    private readonly List<MmSlot> _scanList = [];
    private readonly Dictionary<int, MmSlot> _slotTable = [];
    private readonly Dictionary<ulong, int> _stable = [];
    private readonly Dictionary<ulong, int> _unstable = [];
    private readonly ulong _zeroHash;
    private RmapItem[] _items = new RmapItem[256];
    private int _itemHighWater;
    private int _freeItem = RmapItem.None;
    private StableNode[] _nodes = new StableNode[64];
    private int _nodeHighWater;
    private int _freeNode = NoNode;
    private int _cursor;
    private int _nextSlotId;
    private bool _everUsed;

    private int _pagesToScan = 100;
    private int _sleepMilliseconds = 20;
    private int _maxPageSharing = 256;
    private volatile bool _useZeroPages;
    private volatile bool _smartScan = true;
    private volatile KsmRunMode _run = KsmRunMode.Stop;

    private long _pagesShared;
    private long _pagesSharing;
    private long _rmapItems;
    private long _pagesUnshared;
    private long _fullScans;
    private long _chains;
    private long _dups;
    private long _pagesScanned;
    private long _pagesSkipped;
    private long _merges;
    private long _ksmZeroPages;
    private long _cowKsm;
    private long _swpinCopy;

    internal KsmScanner(Host host)
    {
        _host = host;
        _memory = host.Memory;
        _zeroHash = XxHash3.HashToUInt64(new byte[HostMemory.FrameSize]);
    }

    /// <summary><c>pages_to_scan</c>: rmap items one <see cref="Step()"/> visits (default 100; 1 or more).</summary>
    /// <exception cref="InvalidKsmSettingException">The value is below 1.</exception>
    public int PagesToScan
    {
        get => Volatile.Read(ref _pagesToScan);
        set
        {
            if (value < 1)
            {
                throw new InvalidKsmSettingException("pages_to_scan", value, "a batch scans at least 1 page");
            }

            Volatile.Write(ref _pagesToScan, value);
        }
    }

    /// <summary><c>sleep_millisecs</c>: how long a daemon loop sleeps between steps (default 20; 0 or more).</summary>
    /// <exception cref="InvalidKsmSettingException">The value is negative.</exception>
    public int SleepMilliseconds
    {
        get => Volatile.Read(ref _sleepMilliseconds);
        set
        {
            if (value < 0)
            {
                throw new InvalidKsmSettingException("sleep_millisecs", value, "the sleep must be 0 or more milliseconds");
            }

            Volatile.Write(ref _sleepMilliseconds, value);
        }
    }

    /// <summary>
    /// <c>max_page_sharing</c>: most rmap items one KSM page serves (default 256; at least 2); more equal pages make a
    /// chain of several KSM pages (dups). Changeable only while no page is shared, as in Linux.
    /// </summary>
    /// <exception cref="InvalidKsmSettingException">The value is below 2, or KSM pages are shared now.</exception>
    public int MaxPageSharing
    {
        get => Volatile.Read(ref _maxPageSharing);
        set
        {
            if (value < 2)
            {
                throw new InvalidKsmSettingException("max_page_sharing", value, "a KSM page must be shareable by at least 2 mappings");
            }

            lock (_scanLock)
            {
                lock (_lock)
                {
                    if (value != _maxPageSharing && _pagesShared != 0)
                    {
                        throw new InvalidKsmSettingException("max_page_sharing", value, $"it can change only while no page is shared ({_pagesShared} are; Linux answers EBUSY): unmerge first");
                    }

                    _maxPageSharing = value;
                }
            }
        }
    }

    /// <summary><c>use_zero_pages</c>: merge all-zero pages with the host's zero page instead of a KSM page (default false).</summary>
    public bool UseZeroPages
    {
        get => _useZeroPages;
        set => _useZeroPages = value;
    }

    /// <summary><c>smart_scan</c>: skip pages that were never merged after several visits (default true).</summary>
    public bool SmartScan
    {
        get => _smartScan;
        set => _smartScan = value;
    }

    /// <summary>
    /// <c>run</c>: <see cref="KsmRunMode.Stop"/> (default), <see cref="KsmRunMode.Merge"/>, or
    /// <see cref="KsmRunMode.Unmerge"/>, which breaks every KSM page of every process and drops every rmap item before
    /// it returns, then scans no more (as Stop).
    /// </summary>
    /// <exception cref="InvalidKsmSettingException">Not a <see cref="KsmRunMode"/> value.</exception>
    public KsmRunMode Run
    {
        get => _run;
        set
        {
            if (value is not (KsmRunMode.Stop or KsmRunMode.Merge or KsmRunMode.Unmerge))
            {
                throw new InvalidKsmSettingException("run", value, "run is 0 (stop), 1 (merge) or 2 (unmerge)");
            }

            lock (_scanLock)
            {
                _run = value;
                if (value == KsmRunMode.Unmerge)
                {
                    UnmergeAll();
                }
            }
        }
    }

    /// <summary>A snapshot of the counters.</summary>
    public KsmStats Stats
    {
        get
        {
            lock (_lock)
            {
                var zero = Volatile.Read(ref _ksmZeroPages);
                var unshared = _pagesUnshared;
                return new KsmStats
                {
                    PagesShared = _pagesShared,
                    PagesSharing = _pagesSharing,
                    PagesUnshared = unshared,
                    PagesVolatile = Math.Max(0, _rmapItems - _pagesShared - _pagesSharing - unshared),
                    FullScans = _fullScans,
                    GeneralProfit = ((_pagesSharing + zero) * HostMemory.FrameSize) - (_rmapItems * RmapItemBytes),
                    KsmZeroPages = zero,
                    StableNodeChains = _chains,
                    StableNodeDups = _dups,
                    PagesScanned = _pagesScanned,
                    PagesSkipped = _pagesSkipped,
                    Merges = _merges,
                    RmapItems = _rmapItems,
                };
            }
        }
    }

    /// <summary>Write faults that copied a KSM page (cow_ksm).</summary>
    internal long CowKsm => Volatile.Read(ref _cowKsm);

    /// <summary>Swap-ins that copied a page once shared by KSM (ksm_swpin_copy).</summary>
    internal long SwpinCopy => Volatile.Read(ref _swpinCopy);

    /// <summary>One process's KSM counters (<c>/proc/&lt;pid&gt;/ksm_stat</c>).</summary>
    public KsmProcessStats ProcessStats(Mm mm)
    {
        ArgumentNullException.ThrowIfNull(mm);
        long merging;
        long items;
        lock (_lock)
        {
            var slot = mm.KsmSlot;
            merging = slot?.Merging ?? 0;
            items = slot?.Items ?? 0;
        }

        var zero = mm.KsmZeroPages;
        return new KsmProcessStats
        {
            MergingPages = merging,
            RmapItems = items,
            ZeroPages = zero,
            Profit = ((merging + zero) * HostMemory.FrameSize) - (items * RmapItemBytes),
        };
    }

    /// <summary>One ksmd batch of <see cref="PagesToScan"/> pages; see <see cref="Step(int)"/>.</summary>
    public int Step() => Step(PagesToScan);

    /// <summary>
    /// One ksmd batch (<c>ksm_do_scan</c>): visits up to <paramref name="pages"/> present anonymous pages of mergeable
    /// memory, going on where the last batch stopped, and stops early at the end of a full scan. Pages smart scan
    /// skips are not counted. Returns the pages visited: 0 when <see cref="Run"/> is not Merge or nothing is mergeable.
    /// Safe against every concurrent host operation; concurrent calls serialise.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="pages"/> is negative.</exception>
    public int Step(int pages)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(pages);
        lock (_scanLock)
        {
            if (_run != KsmRunMode.Merge)
            {
                return 0;
            }

            var scanned = 0;
            while (scanned < pages)
            {
                MmSlot slot;
                lock (_lock)
                {
                    if (_scanList.Count == 0)
                    {
                        break;
                    }

                    if (_cursor >= _scanList.Count)
                    {
                        EndFullScanLocked();
                        break;
                    }

                    slot = _scanList[_cursor];
                }

                var mm = slot.Mm;
                if (!mm.KsmEnterRead())
                {
                    DropSlot(slot);
                    continue;
                }

                bool finished;
                var keep = true;
                try
                {
                    scanned += ScanMm(slot, pages - scanned, out finished);
                    if (finished)
                    {
                        RemoveItemsAfter(slot, slot.Previous);
                        keep = slot.First != RmapItem.None || mm.HasMergeableMemoryLocked;
                    }
                }
                finally
                {
                    mm.KsmExitRead();
                }

                if (finished)
                {
                    slot.Previous = RmapItem.None;
                    slot.ScanAddress = Hva.Zero;
                    if (!keep)
                    {
                        DropSlot(slot); // nothing left to scan: the process leaves the list (clears MMF_VM_MERGEABLE)
                    }
                    else
                    {
                        lock (_lock)
                        {
                            _cursor++;
                        }
                    }
                }
            }

            return scanned;
        }
    }

    /// <summary>Puts <paramref name="mm"/> on the scan list if it is not there (<c>__ksm_enter</c>): behind the cursor.</summary>
    internal void Enter(Mm mm)
    {
        lock (_lock)
        {
            if (mm.KsmSlot is not null)
            {
                return;
            }

            var slot = new MmSlot(mm, _nextSlotId++);
            _slotTable[slot.Id] = slot;
            _everUsed = true;
            mm.KsmSlot = slot;
            // Behind the cursor (Linux: list_add_tail before ksm_scan.mm_slot). With no pass under way the cursor is at
            // the list head, and behind it is the end of the list.
            var atHead = _cursor == 0 && (_scanList.Count == 0 || !_scanList[0].Started);
            if (atHead || _cursor >= _scanList.Count)
            {
                _scanList.Add(slot);
            }
            else
            {
                _scanList.Insert(_cursor, slot);
                _cursor++;
            }
        }
    }

    /// <summary><c>ksm_fork</c>: a child of a listed process is listed too.</summary>
    internal void Fork(Mm parent, Mm child)
    {
        bool listed;
        lock (_lock)
        {
            listed = parent.KsmSlot is not null;
        }

        if (listed)
        {
            Enter(child);
        }
    }

    /// <summary>
    /// <c>ksm_migrate_folio</c>: the stable node of KSM page <paramref name="old"/> (frozen by its migration, its content
    /// already copied) names <paramref name="target"/> from now on.
    /// </summary>
    internal void MigrateKsmPage(Pfn old, Pfn target)
    {
        lock (_lock)
        {
            var index = _memory.Frame(old).RmapIndex;
            if (index < (ulong)_nodeHighWater && _nodes[(int)index].Kpfn == old)
            {
                _nodes[(int)index].Kpfn = target;
            }
        }
    }

    /// <summary>
    /// The distinct (anon family, page index) of the sharers of KSM page <paramref name="kpfn"/>, for
    /// <c>rmap_walk_ksm</c>: a snapshot under the leaf lock (empty for a page whose node is gone or not filed yet).
    /// </summary>
    internal List<(int Family, ulong Index)> SharersOf(Pfn kpfn)
    {
        var sharers = new List<(int Family, ulong Index)>();
        lock (_lock)
        {
            var index = _memory.Frame(kpfn).RmapIndex;
            if (index >= (ulong)_nodeHighWater)
            {
                return sharers;
            }

            var node = (int)index;
            if (_nodes[node].Kpfn != kpfn || _nodes[node].Kind is StableNodeKind.Free or StableNodeKind.Chain)
            {
                return sharers;
            }

            HashSet<(int, ulong)>? seen = _nodes[node].Sharers > 8 ? [] : null;
            for (var item = _nodes[node].Head; item != RmapItem.None; item = _items[item].SharerNext)
            {
                var sharer = (_items[item].Family, _items[item].Index);
                if (seen is null ? !sharers.Contains(sharer) : seen.Add(sharer))
                {
                    sharers.Add(sharer);
                }
            }
        }

        return sharers;
    }

    /// <summary>
    /// For swap-in (Linux's <c>ksm_might_need_to_copy</c>): a KSM page from the swap cache is mapped as it is only while
    /// its stable node is live and run is not 2; otherwise the faulting process gets its own copy.
    /// </summary>
    internal bool SwapInNeedsCopy(Pfn kpfn)
    {
        if (_run == KsmRunMode.Unmerge)
        {
            return true;
        }

        lock (_lock)
        {
            var index = _memory.Frame(kpfn).RmapIndex;
            return index >= (ulong)_nodeHighWater || !IsLiveKsmPage((int)index, kpfn);
        }
    }

    /// <summary>Counts a write fault that copied a KSM page.</summary>
    internal void CountCowKsm() => Interlocked.Increment(ref _cowKsm);

    /// <summary>Counts a swap-in that copied a page another process's mapping owns.</summary>
    internal void CountSwpinCopy() => Interlocked.Increment(ref _swpinCopy);

    /// <summary>Adjusts the host-wide ksm_zero_pages (each process keeps its own too).</summary>
    internal void AddZeroPages(long delta) => Interlocked.Add(ref _ksmZeroPages, delta);

    /// <summary>The content hash (xxHash3-64) of a frame: the checksum and both trees' key.</summary>
    internal ulong Hash(Pfn pfn) => XxHash3.HashToUInt64(_memory.FrameBytes(pfn));

    private void EndFullScanLocked()
    {
        // As Linux resets root_unstable_tree: the items keep their unstable mark (and count in pages_unshared) until
        // their next visit takes them out.
        _unstable.Clear();
        _fullScans++;
        _cursor = 0;
    }

    private void DropSlot(MmSlot slot)
    {
        RemoveItemsAfter(slot, RmapItem.None);
        lock (_lock)
        {
            var index = _scanList.IndexOf(slot);
            if (index >= 0)
            {
                _scanList.RemoveAt(index);
                if (index < _cursor)
                {
                    _cursor--;
                }
            }

            slot.Listed = false;
            _slotTable.Remove(slot.Id); // its items are gone: nothing names the slot any more
            if (ReferenceEquals(slot.Mm.KsmSlot, slot))
            {
                slot.Mm.KsmSlot = null;
            }
        }
    }
}
