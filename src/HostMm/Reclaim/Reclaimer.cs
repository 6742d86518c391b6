using Hypervisor.HostMm.Frames;
using Hypervisor.HostMm.Migration;
using Hypervisor.HostMm.Swap;

namespace Hypervisor.HostMm.Reclaim;

/// <summary>
/// Memory reclaim and swap for one host (Linux's <c>mm/vmscan.c</c> with <c>mm/swap_state.c</c> and
/// <c>mm/workingset.c</c>): memory cgroups and their LRU lists, charging and direct reclaim at allocation, the
/// background reclaimer (<see cref="Step"/>, kswapd), aging through the reverse map and the secondary MMUs' young ops,
/// swap-out through <c>try_to_unmap</c> in <c>reference/mmu-notifier.md</c> §3's order, the swap cache, swap-in with
/// readahead, and the workingset refault test.
/// </summary>
/// <remarks>
/// <para><b>Lock order</b> (the host's, extended): mmap lock → page lock (<see cref="FrameFlags.Locked"/> on a data
/// frame) → the mmap lock of a process found through the reverse map (only ever tried, never waited for) → notifier
/// start → page-table lock → a secondary MMU's lock. LRU locks (<see cref="Lruvec.Lock"/>), the reverse map's table
/// lock and the swap area's locks are leaves. Reclaim never waits for a page lock (it tries), so a thread that faults
/// while holding one cannot deadlock against it.</para>
/// <para><b>References.</b> An LRU list holds no reference. Isolation takes one (speculatively: a frame whose count is
/// 0 is being freed and is left to its freer, who takes it off the list under the LRU lock). The swap cache holds one
/// per cached frame. Every present PTE holds one.</para>
/// <para><b>Threads.</b> Direct reclaim runs on any allocating thread (vCPU threads in get-user-pages included); the
/// background reclaimer is a <see cref="Step"/> method that a daemon thread loops; both may run at once on different
/// lists or the same list (isolation hands each frame to one of them).</para>
/// </remarks>
public sealed partial class Reclaimer : IFrameReleaseHook, IDisposable
{
    private readonly Host _host;
    private readonly HostMemory _memory;
    private readonly ReclaimOptions _options;
    private readonly Lock _cgroupLock = new();
    private readonly long[] _minFree;
    private readonly ManualResetEventSlim _kswapdWake = new(false);
    private MemoryCgroup[] _cgroups = [];
    private Lruvec[] _lruvecs = [];
    private int _cursor;

    // Frames isolated by reclaimers right now: a reclaimer that finds nothing to isolate while others hold pages
    // waits for them rather than declaring the cgroup out of memory (Linux's too_many_isolated throttling).
    // Invariant: a charged frame off every LRU list is counted here from before its list's lock is released until after
    // it is back on a list or uncharged, so no reader sees it in neither place.
    private long _isolated;

    private long _pgscanKswapd;
    private long _pgscanDirect;
    private long _pgstealKswapd;
    private long _pgstealDirect;
    private long _pgrefill;
    private long _pgactivate;
    private long _pgdeactivate;
    private long _pglazyfreed;
    private long _pgmajfault;
    private long _swapCacheHits;
    private long _swapRa;
    private long _swapRaHit;
    private long _workingsetRefault;
    private long _workingsetActivate;
    private long _workingsetRestore;
    private long _swapCacheReclaimed;
    private long _youngQueries;
    private long _youngHits;
    private long _allocstall;
    private long _oomFailures;
    private long _swapWriteErrors;
    private long _memoryFailures;
    private long _kswapdRuns;

    // Reverse-map walks that skipped a process because its mmap lock was busy: a round that freed nothing for that reason
    // waits and retries rather than failing.
    private long _rmapBusy;

    internal Reclaimer(Host host, ReclaimOptions options, SwapOptions? swap)
    {
        options.Validate();
        _host = host;
        _memory = host.Memory;
        _options = options;
        Rmap = new ReverseMap();
        _minFree = new long[_memory.NodeCount];
        for (var node = 0; node < _minFree.Length; node++)
        {
            var frames = _memory.GetNode(node).FrameCount;
            _minFree[node] = options.MinFreePages > 0 ? options.MinFreePages : Math.Max(32, frames / 256);
        }

        Root = CreateCgroup("root", MemoryCgroup.Unlimited);
        if (swap is not null)
        {
            Area = SwapFactory.CreateArea(swap);
            Cache = new SwapCache(Area.SlotCount);
            Readahead = SwapFactory.CreateReadahead(swap);
            Writeback = new SwapWriteback(this);
        }

        _memory.ReleaseHook = this;
    }

    /// <summary>The options in force.</summary>
    public ReclaimOptions Options => _options;

    /// <summary>The root cgroup: processes created without one are charged here; unlimited unless a limit is set.</summary>
    public MemoryCgroup Root { get; }

    /// <summary>The cgroups, root first.</summary>
    public IReadOnlyList<MemoryCgroup> Cgroups => Volatile.Read(ref _cgroups);

    /// <summary>The swap area, or null when the host has no swap (reclaim then frees only lazily freed pages).</summary>
    public SwapArea? Area { get; }

    /// <summary>The swap cache of <see cref="Area"/>.</summary>
    internal SwapCache? Cache { get; }

    /// <summary>The swap readahead state of <see cref="Area"/>.</summary>
    internal SwapReadahead? Readahead { get; }

    /// <summary>The asynchronous writeback of <see cref="Area"/> (null without swap).</summary>
    internal SwapWriteback? Writeback { get; }

    /// <summary>The anonymous reverse map.</summary>
    internal ReverseMap Rmap { get; }

    /// <summary>A snapshot of the counters.</summary>
    public ReclaimStats Stats
    {
        get
        {
            long active = 0, inactive = 0;
            foreach (var lruvec in Volatile.Read(ref _lruvecs))
            {
                active += lruvec.ActiveCount;
                inactive += lruvec.InactiveCount;
            }

            var area = Area?.GetStats();
            return new ReclaimStats
            {
                PgscanKswapd = Volatile.Read(ref _pgscanKswapd),
                PgscanDirect = Volatile.Read(ref _pgscanDirect),
                PgstealKswapd = Volatile.Read(ref _pgstealKswapd),
                PgstealDirect = Volatile.Read(ref _pgstealDirect),
                Pgrefill = Volatile.Read(ref _pgrefill),
                Pgactivate = Volatile.Read(ref _pgactivate),
                Pgdeactivate = Volatile.Read(ref _pgdeactivate),
                Pglazyfreed = Volatile.Read(ref _pglazyfreed),
                Pswpout = area?.Pswpout ?? 0,
                Pswpin = area?.Pswpin ?? 0,
                Pgmajfault = Volatile.Read(ref _pgmajfault),
                SwapCacheHits = Volatile.Read(ref _swapCacheHits),
                SwapRa = Volatile.Read(ref _swapRa),
                SwapRaHit = Volatile.Read(ref _swapRaHit),
                WorkingsetRefaultAnon = Volatile.Read(ref _workingsetRefault),
                WorkingsetActivateAnon = Volatile.Read(ref _workingsetActivate),
                WorkingsetRestoreAnon = Volatile.Read(ref _workingsetRestore),
                SwapCacheReclaimed = Volatile.Read(ref _swapCacheReclaimed),
                SecondaryYoungQueries = Volatile.Read(ref _youngQueries),
                SecondaryYoungHits = Volatile.Read(ref _youngHits),
                Allocstall = Volatile.Read(ref _allocstall),
                OomFailures = Volatile.Read(ref _oomFailures),
                SwapWriteErrors = Volatile.Read(ref _swapWriteErrors),
                MemoryFailures = Volatile.Read(ref _memoryFailures),
                KswapdRuns = Volatile.Read(ref _kswapdRuns),
                MglruAgings = Volatile.Read(ref _mglruAgings),
                MglruWalkPromotions = Volatile.Read(ref _mglruWalkPromotions),
                MglruLookAroundPromotions = Volatile.Read(ref _mglruLookAroundPromotions),
                MglruTierProtections = Volatile.Read(ref _mglruTierProtections),
                NrWriteback = Writeback?.PagesInFlight ?? 0,
                WritebackAsyncPages = Writeback?.PagesSubmitted ?? 0,
                SwapCachedPages = Cache?.Pages ?? 0,
                ActiveAnonPages = active,
                InactiveAnonPages = inactive,
                SwapTotalPages = area?.TotalSlots ?? 0,
                SwapFreePages = area?.FreeSlots ?? 0,
            };
        }
    }

    /// <summary>
    /// Creates a memory cgroup with a limit of <paramref name="maxPages"/> (<see cref="MemoryCgroup.Unlimited"/> for
    /// none), with one LRU vector per NUMA node. Place processes in it with <see cref="Host.CreateMm(int, MemoryCgroup?)"/>.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">The limit is not positive, or too many cgroups exist.</exception>
    public MemoryCgroup CreateCgroup(string name, long maxPages)
    {
        ArgumentNullException.ThrowIfNull(name);
        if (maxPages <= 0)
        {
            throw new ArgumentOutOfRangeException(nameof(maxPages), maxPages, $"cgroup '{name}': memory.max must be at least one page");
        }

        lock (_cgroupLock)
        {
            var cgroups = _cgroups;
            var id = cgroups.Length + 1;
            var nodes = _memory.NodeCount;
            if (id > ushort.MaxValue || (cgroups.Length + 1) * nodes > ShadowEntry.MaxLruvecs)
            {
                throw new ArgumentOutOfRangeException(nameof(name), name, $"cgroup '{name}': at most {Math.Min(ushort.MaxValue, ShadowEntry.MaxLruvecs / nodes)} cgroups fit a host of {nodes} nodes");
            }

            var cgroup = new MemoryCgroup(id, name, maxPages);
            var lruvecs = new Lruvec[(cgroups.Length + 1) * nodes];
            Array.Copy(_lruvecs, lruvecs, _lruvecs.Length);
            for (var node = 0; node < nodes; node++)
            {
                var index = (cgroups.Length * nodes) + node;
                lruvecs[index] = new Lruvec(index, node, cgroup);
            }

            Volatile.Write(ref _lruvecs, lruvecs);
            Volatile.Write(ref _cgroups, [.. cgroups, cgroup]);
            return cgroup;
        }
    }

    /// <summary>
    /// True when some node's free frames are below its low watermark or some cgroup's headroom below its low margin:
    /// the background reclaimer has work (<see cref="Step"/>).
    /// </summary>
    public bool NeedsReclaim
    {
        get
        {
            for (var node = 0; node < _minFree.Length; node++)
            {
                if (_memory.GetNode(node).FreeFrames < LowWatermark(node))
                {
                    return true;
                }
            }

            foreach (var cgroup in Cgroups)
            {
                if (cgroup.MaxPages != MemoryCgroup.Unlimited && cgroup.HeadroomPages < CgroupLowMargin(cgroup))
                {
                    return true;
                }
            }

            return false;
        }
    }

    /// <summary>
    /// One step of the background reclaimer (kswapd): when a node is below its low watermark or a cgroup close to its
    /// limit, reclaims up to <paramref name="budgetPages"/> pages until the node is above its high watermark and the
    /// cgroup has twice its margin free. Returns the pages reclaimed (0 when there was nothing to do).
    /// </summary>
    public long Step(long budgetPages)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(budgetPages);
        if (!NeedsReclaim)
        {
            return 0;
        }

        Interlocked.Increment(ref _kswapdRuns);
        long reclaimed = 0;
        var control = new ScanControl(Direct: false, IgnoreReferences: false);
        foreach (var cgroup in Cgroups)
        {
            if (cgroup.MaxPages == MemoryCgroup.Unlimited)
            {
                continue;
            }

            while (reclaimed < budgetPages && cgroup.HeadroomPages < 2 * CgroupLowMargin(cgroup))
            {
                var got = ReclaimFrom(cgroup, -1, Math.Min(_options.BatchPages, budgetPages - reclaimed), control);
                reclaimed += got;
                if (got == 0)
                {
                    break;
                }
            }
        }

        for (var node = 0; node < _minFree.Length && reclaimed < budgetPages; node++)
        {
            while (reclaimed < budgetPages && _memory.GetNode(node).FreeFrames < HighWatermark(node))
            {
                var got = ReclaimFrom(null, node, Math.Min(_options.BatchPages, budgetPages - reclaimed), control);
                reclaimed += got;
                if (got == 0)
                {
                    break;
                }
            }
        }

        return reclaimed;
    }

    /// <summary>
    /// Blocks the background reclaimer's thread until an allocation finds memory low, or <paramref name="timeout"/>
    /// passes; true when woken for work.
    /// </summary>
    public bool WaitForWork(TimeSpan timeout)
    {
        if (NeedsReclaim)
        {
            return true;
        }

        var woken = _kswapdWake.Wait(timeout);
        _kswapdWake.Reset();
        return woken || NeedsReclaim;
    }

    /// <summary>
    /// Reclaims up to <paramref name="pages"/> pages charged to <paramref name="cgroup"/> (cgroup v2's
    /// <c>memory.reclaim</c>), referenced pages aged as usual. Returns the pages reclaimed.
    /// </summary>
    public long ReclaimCgroup(MemoryCgroup cgroup, long pages)
    {
        ArgumentNullException.ThrowIfNull(cgroup);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(pages);
        long reclaimed = 0;
        var control = new ScanControl(Direct: false, IgnoreReferences: false);
        while (reclaimed < pages)
        {
            var got = ReclaimFrom(cgroup, -1, Math.Min(_options.BatchPages, pages - reclaimed), control);
            if (got == 0)
            {
                break;
            }

            reclaimed += got;
        }

        return reclaimed;
    }

    /// <summary>Frees the swap area and its device (a temporary swap file is deleted).</summary>
    public void Dispose()
    {
        if (ReferenceEquals(_memory.ReleaseHook, this))
        {
            _memory.ReleaseHook = null;
        }

        Writeback?.Dispose();
        Cache?.Dispose();
        Area?.Dispose();
        _kswapdWake.Dispose();
    }

    /// <inheritdoc />
    void IFrameReleaseHook.OnLastReference(Pfn pfn, ref FrameInfo frame)
    {
        if (frame.Has(FrameFlags.Lru))
        {
            var lruvec = LruvecOf(ref frame);
            lock (lruvec.Lock)
            {
                if (frame.Has(FrameFlags.Lru))
                {
                    lruvec.RemoveLocked(_memory.FrameTable, (uint)pfn.Value);
                }
            }
        }

        var cgroup = frame.MemoryCgroupId;
        if (cgroup != 0)
        {
            CgroupById(cgroup).Uncharge(1);
            frame.SetMemoryCgroup(0);
        }

        frame.ClearFlags(FrameFlags.Readahead | FrameFlags.Workingset | FrameFlags.Accessed | FrameFlags.LruRefsMask);
    }

    /// <summary>
    /// Allocates a frame for anonymous memory of <paramref name="mm"/> (or the swap cache on its behalf): charges its
    /// cgroup, reclaiming from the cgroup when the charge would pass the limit and from the host when the node is below
    /// its minimum watermark or empty, up to <see cref="ReclaimOptions.DirectReclaimRetries"/> rounds. False (out of
    /// memory) when reclaim can free nothing more. The frame is charged and on no list; the caller maps it and then
    /// calls <see cref="LruAdd"/>.
    /// </summary>
    /// <param name="mm">The process the page is for (its cgroup pays).</param>
    /// <param name="zero">Zero the frame.</param>
    /// <param name="mayReclaim">False for readahead: fail at once rather than reclaim.</param>
    /// <param name="pfn">The frame.</param>
    /// <param name="policy">The NUMA policy of the VMA the page is for: it picks the node (local by default: the calling
    /// thread's <see cref="HostThread.CurrentNode"/>, else the process's preferred node) and, for a bind policy, the only
    /// nodes allowed.</param>
    /// <param name="pageIndex">The page's index in its VMA's anon family (an interleave policy spreads by it).</param>
    internal bool TryAllocateAnon(Mm mm, bool zero, bool mayReclaim, out Pfn pfn, NumaPolicy policy = default, ulong pageIndex = 0)
    {
        var cgroup = mm.Cgroup;

        // Local allocation is the faulting thread's node (Linux's numa_node_id()): a vCPU thread with a home node
        // faults guest RAM in there; a thread with none uses the process's preferred node.
        var node = policy.NodeFor(HostThread.NodeFor(mm), pageIndex);
        if (node >= _memory.NodeCount)
        {
            node = mm.PreferredNode; // a policy naming nodes this host lacks (checked at mbind) falls back to local
        }

        var flags = zero ? AllocationFlags.Zero : AllocationFlags.None;
        var failures = 0;
        var retries = default(RetryBudget);
        var stalled = false;
        for (var round = 0; ; round++)
        {
            if (round > _options.DirectReclaimRetries)
            {
                // Out of counted rounds. Fast failed rounds can use them up within one scheduler tick of a preempted
                // thread that holds the pages' locks or references; while pages remain to reclaim, sleep and go on in
                // last-resort mode, up to the throttle bound, rather than fail.
                failures = 0;
                if (!mayReclaim || !ThrottleBeforeOom(cgroup.MaxPages == MemoryCgroup.Unlimited ? null : cgroup, ref failures, ref retries))
                {
                    break;
                }

                round = _options.DirectReclaimRetries / 2;
            }

            // The last rounds reclaim even referenced pages: an allocation that swap can satisfy must not fail just
            // because everything was touched recently (Linux's falling scan priority).
            var control = new ScanControl(Direct: true, IgnoreReferences: round >= _options.DirectReclaimRetries / 2);
            if (!cgroup.TryCharge(1))
            {
                if (!mayReclaim)
                {
                    pfn = default;
                    return false;
                }

                CountStall(ref stalled);
                failures = ReclaimOrWait(cgroup, -1, control, ref round, ref retries) ? 0 : failures + (control.IgnoreReferences ? 1 : 0);
                if (failures >= 3 && !ThrottleBeforeOom(cgroup, ref failures, ref retries))
                {
                    break;
                }

                continue;
            }

            if (_memory.GetNode(node).FreeFrames < _minFree[node] && mayReclaim)
            {
                WakeKswapd();
                CountStall(ref stalled);
                ReclaimFrom(null, node, _options.BatchPages, control);
            }
            else if (_memory.GetNode(node).FreeFrames < LowWatermark(node))
            {
                WakeKswapd();
            }

            if (TryAllocateOnPolicy(policy, node, flags, out pfn))
            {
                _memory.Frame(pfn).SetMemoryCgroup(cgroup.Id);
                if (cgroup.MaxPages != MemoryCgroup.Unlimited && cgroup.HeadroomPages < CgroupLowMargin(cgroup))
                {
                    WakeKswapd();
                }

                return true;
            }

            cgroup.Uncharge(1);
            if (!mayReclaim)
            {
                return false;
            }

            CountStall(ref stalled);
            failures = ReclaimOrWait(null, -1, control, ref round, ref retries) ? 0 : failures + (control.IgnoreReferences ? 1 : 0);
            if (failures >= 3 && !ThrottleBeforeOom(null, ref failures, ref retries))
            {
                break;
            }
        }

        // Last chance before out of memory: other threads' reclaim (or exits) may have made room since this thread's last
        // failed round, and reclaim finding nothing to free is no proof that the charge cannot succeed now.
        if (mayReclaim && cgroup.TryCharge(1))
        {
            if (TryAllocateOnPolicy(policy, node, flags, out pfn))
            {
                _memory.Frame(pfn).SetMemoryCgroup(cgroup.Id);
                return true;
            }

            cgroup.Uncharge(1);
        }

        cgroup.CountOom();
        Interlocked.Increment(ref _oomFailures);
        pfn = default;
        return false;
    }

    /// <summary>
    /// Three last-resort rounds in a row, or all the counted rounds, freed nothing. While the pages that reclaim could
    /// take (those of <paramref name="cgroup"/>, or any when null) are still on the LRU lists, isolated or in flight,
    /// and swap has room, the failure may be a moment's contention — other allocators' reclaim or faults holding the
    /// same few pages on an oversubscribed machine — so the allocation sleeps a millisecond and tries again (Linux
    /// throttles reclaim before it invokes the OOM killer), up to <see cref="MaxThrottles"/> times. True to go on;
    /// false to declare out of memory.
    /// </summary>
    private bool ThrottleBeforeOom(MemoryCgroup? cgroup, ref int failures, ref RetryBudget retries)
    {
        if (retries.Throttles >= MaxThrottles || !CanReclaimAnon)
        {
            return false;
        }

        long onLists = 0;
        foreach (var lruvec in Volatile.Read(ref _lruvecs))
        {
            if (cgroup is null || ReferenceEquals(lruvec.Cgroup, cgroup))
            {
                onLists += lruvec.Count;
            }
        }

        // Pages a cgroup is charged for but that are on no list and not isolated are in flight — faulted or read in
        // (a swap-in's readahead window, up to eight pages per faulting thread) and not yet added to a list, or being
        // freed — and come back to a list or leave the charge by themselves.
        if (onLists == 0 && Volatile.Read(ref _isolated) == 0 && (cgroup is null || cgroup.UsagePages == 0))
        {
            return false;
        }

        retries.Throttles++;
        failures = 0;
        Thread.Sleep(1);
        return true;
    }

    /// <summary>
    /// One direct-reclaim round for an allocation: true when it freed something, or when it freed nothing only because
    /// other reclaimers hold the pages isolated — then it waits for them (a millisecond, up to a bound) and the round
    /// does not count, so two threads reclaiming a small cgroup at once cannot make each other fail.
    /// </summary>
    private bool ReclaimOrWait(MemoryCgroup? cgroup, int node, ScanControl control, ref int round, ref RetryBudget retries)
    {
        var freedBefore = FreedByReclaim;

        var busyBefore = Volatile.Read(ref _rmapBusy);
        if (ReclaimFrom(cgroup, node, _options.BatchPages, control) != 0 || FreedByReclaim != freedBefore)
        {
            // Progress — this thread's, or another reclaimer's meanwhile (whose isolated pages this round could not
            // take): retry without using up a round (memcg's try_charge retries while reclaim frees anything), so a
            // thread whose freed pages another allocating thread keeps taking does not run out of rounds — bounded, so
            // that thread cannot starve this one forever. Its own bound: the waits below are a different budget, and a
            // busy cgroup spends this one in moments, long before a preempted reclaimer gives its pages back.
            if (retries.Progress < MaxProgressRetries)
            {
                retries.Progress++;
                round--;
            }

            return true;
        }

        // Nothing freed. A failure only when nothing will come back by itself: no pages isolated by other reclaimers, and
        // no mapping left in place because its process's mmap lock was busy (a fork, an exit, an mprotect: a moment).
        if ((Volatile.Read(ref _isolated) == 0 && Volatile.Read(ref _rmapBusy) == busyBefore) || retries.Waits >= MaxIsolationWaits)
        {
            return false;
        }

        retries.Waits++;
        Thread.Sleep(1);
        round--; // this round waited rather than failed: the loop's increment gives it back
        return true;
    }

    /// <summary>One allocation attempt on <paramref name="node"/>: any node may serve it unless the policy binds, then only the bound nodes (the first node first).</summary>
    private bool TryAllocateOnPolicy(NumaPolicy policy, int node, AllocationFlags flags, out Pfn pfn)
    {
        if (policy.MayFallBack)
        {
            return _memory.TryAllocate(node, flags, out pfn);
        }

        if (_memory.TryAllocate(node, flags | AllocationFlags.ExactNode, out pfn))
        {
            return true;
        }

        for (var other = 0; other < _memory.NodeCount; other++)
        {
            if (other != node && (policy.Nodes & (1UL << other)) != 0 && _memory.TryAllocate(other, flags | AllocationFlags.ExactNode, out pfn))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>
    /// Puts a newly mapped or read anonymous frame on its LRU (Linux's <c>folio_add_lru</c>). Classic: the inactive list,
    /// or the active list for a refault the workingset test called recent. Multi-gen (<c>lru_gen_add_folio</c>): a page
    /// added by a fault (<paramref name="inFault"/>, Linux's <c>lru_gen_in_fault</c>) or an activated refault goes to the
    /// youngest generation (swap readahead runs inside the fault, so its pages count as faulted too); any other anonymous
    /// page not in the swap cache to the second youngest; a swap-cache page added outside a fault to the second oldest
    /// (the oldest when only two generations exist).
    /// </summary>
    internal void LruAdd(Pfn pfn, bool active = false, bool inFault = false)
    {
        var lruvec = LruvecOf(ref _memory.Frame(pfn));
        lock (lruvec.Lock)
        {
            LruAddLocked(lruvec, pfn, active, inFault);
        }
    }

    /// <summary><see cref="LruAdd"/> with <paramref name="lruvec"/> (the frame's) locked by the caller.</summary>
    private void LruAddLocked(Lruvec lruvec, Pfn pfn, bool active, bool inFault)
    {
        ref var frame = ref _memory.Frame(pfn);
        if (frame.Has(FrameFlags.Lru) || frame.Has(FrameFlags.Isolated))
        {
            return;
        }

        if (!MultiGen)
        {
            lruvec.AddLocked(_memory.FrameTable, (uint)pfn.Value, active ? LruList.Active : LruList.Inactive);
            return;
        }

        long seq;
        if (active || inFault)
        {
            seq = lruvec.MaxSeq;
        }
        else if (!frame.Has(FrameFlags.SwapCache))
        {
            seq = lruvec.MaxSeq - 1;
        }
        else
        {
            seq = lruvec.Generations <= Lruvec.MinGenerations ? lruvec.MinSeq : lruvec.MinSeq + 1;
        }

        lruvec.AddToGenerationLocked(_memory.FrameTable, (uint)pfn.Value, seq);
    }

    /// <summary>The lruvec <paramref name="frame"/> belongs on (its node and its charge; the root's when uncharged).</summary>
    internal Lruvec LruvecOf(ref FrameInfo frame)
    {
        var cgroup = frame.MemoryCgroupId == 0 ? Root.Id : frame.MemoryCgroupId;
        return Volatile.Read(ref _lruvecs)[((cgroup - 1) * _memory.NodeCount) + frame.Node];
    }

    /// <summary>
    /// Most rounds an allocation retries without counting them because reclaim (its own or another thread's) freed
    /// something that another allocating thread took first. Each is a reclaim pass, microseconds: the bound only keeps
    /// a thread that loses every race from retrying forever (Linux's memcg charge retries without bound while reclaim
    /// makes progress).
    /// </summary>
    private const int MaxProgressRetries = 10_000;

    /// <summary>
    /// Most rounds an allocation sleeps (about a millisecond each) because the pages reclaim could take are isolated by
    /// other reclaimers or mapped by a process whose mmap lock is busy: at least two seconds, so a reclaimer preempted
    /// on an oversubscribed machine in the middle of writing its batch is waited for, not mistaken for exhaustion.
    /// </summary>
    private const int MaxIsolationWaits = 2_000;

    /// <summary>
    /// Most times an allocation sleeps in <see cref="ThrottleBeforeOom"/> before it declares out of memory: a genuine
    /// exhaustion of a limited cgroup with swap room left (its pages pinned) costs this many milliseconds.
    /// </summary>
    private const int MaxThrottles = 500;

    /// <summary>Most pages reclaim writes to the swap device in one call (Linux's swap bios carry up to a cluster's worth; 128 KiB here).</summary>
    private const int MaxWriteRunPages = 32;

    private const int PageBytes = (int)Paging.PageSize;

    private MemoryCgroup CgroupById(int id) => Volatile.Read(ref _cgroups)[id - 1];

    /// <summary>Pages any reclaimer has freed so far (swap-cache pages dropped and lazily freed pages discarded).</summary>
    private long FreedByReclaim => Volatile.Read(ref _swapCacheReclaimed) + Volatile.Read(ref _pglazyfreed);

    /// <summary>True when anonymous pages have somewhere to go: a swap area with a free slot.</summary>
    private bool CanReclaimAnon => Area is { FreeSlots: > 0 };

    private long LowWatermark(int node) => _minFree[node] * 5 / 4;

    private long HighWatermark(int node) => _minFree[node] * 3 / 2;

    /// <summary>The headroom under which a limited cgroup wakes the background reclaimer: 1/64 of the limit, at least 32 pages.</summary>
    private static long CgroupLowMargin(MemoryCgroup cgroup) => Math.Max(32, cgroup.MaxPages / 64);

    private void WakeKswapd()
    {
        if (!_kswapdWake.IsSet)
        {
            _kswapdWake.Set();
        }
    }

    private void CountStall(ref bool stalled)
    {
        if (!stalled)
        {
            stalled = true;
            Interlocked.Increment(ref _allocstall);
        }
    }

    /// <summary>The choices of one reclaim pass (Linux's <c>scan_control</c>, reduced).</summary>
    /// <param name="Direct">Counted as direct reclaim (an allocating thread) rather than kswapd.</param>
    /// <param name="IgnoreReferences">Reclaim referenced pages too (madvise pageout, or direct reclaim at its last rounds).</param>
    internal readonly record struct ScanControl(bool Direct, bool IgnoreReferences);
}
