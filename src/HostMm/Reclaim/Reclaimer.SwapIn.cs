using System.Diagnostics;
using Hypervisor.HostMm.Frames;
using Hypervisor.HostMm.Swap;

namespace Hypervisor.HostMm.Reclaim;

/// <summary>Swap-in: the swap cache lookup, the read with readahead, the workingset refault test, and freeing swap entries.</summary>
public sealed partial class Reclaimer
{
    /// <summary>
    /// The page behind swap slot <paramref name="slot"/>, for a fault of <paramref name="mm"/> (Linux's
    /// <c>swap_cache_get_folio</c>, then <c>swapin_readahead</c> on a miss): a frame found in the swap cache (a minor
    /// fault), or a new frame read from the device together with the cluster around it (a major fault). The frame comes
    /// back locked with one reference for the caller, in the swap cache, on the LRU. A failed or corrupted read never
    /// returns data: it is a <see cref="SwapPageStatus.MemoryFailure"/> naming the cause, and the slot stays as it was so
    /// a later fault tries again.
    /// </summary>
    /// <remarks>Call with <paramref name="mm"/>'s mmap lock held for read and no page-table lock.</remarks>
    internal SwapPage GetSwapPage(Mm mm, ulong slot)
    {
        var area = Area ?? throw new InvalidOperationException($"{mm}: a swap entry for slot {slot} exists but the host has no swap area");
        var cache = Cache!;
        var spin = default(SpinWait);
        while (true)
        {
            if (cache.TryGetFrame(slot, out var cached))
            {
                if (TryLockCachedFrame(cached, slot))
                {
                    Interlocked.Increment(ref _swapCacheHits);
                    if (_memory.Frame(cached).TestAndClearFlag(FrameFlags.Readahead))
                    {
                        Interlocked.Increment(ref _swapRaHit);
                        Readahead!.RecordHit();
                    }

                    return new SwapPage(SwapPageStatus.Locked, cached, Major: false, SwapIoStatus.Ok, Active: false);
                }

                spin.SpinOnce(sleep1Threshold: 20);
                continue;
            }

            switch (area.TrySetCache(slot))
            {
                case SwapCachePrepareResult.SlotFree:
                    return new SwapPage(SwapPageStatus.Retry, default, false, SwapIoStatus.Ok, false);
                case SwapCachePrepareResult.AlreadyCached:
                    // Another thread is reading the slot in, or taking its page out of the cache: wait for it.
                    spin.SpinOnce(sleep1Threshold: 20);
                    continue;
            }

            return ReadIn(mm, slot);
        }
    }

    /// <summary>
    /// Swaps the page <paramref name="pfn"/> (locked, mapped by the caller) out of the swap cache when its slot has no
    /// other user (<c>folio_free_swap</c>): the copy on swap is forgotten, the page is dirty again (it is the only copy),
    /// and the slot is freed. Linux does this on a write fault of an exclusive page and when swap is filling up.
    /// </summary>
    internal void TryFreeSwapCache(Pfn pfn)
    {
        ref var frame = ref _memory.Frame(pfn);
        if (!frame.Has(FrameFlags.SwapCache) || Area is not { } area)
        {
            return;
        }

        var slot = (ulong)frame.SwapSlot;
        if (area.GetUsage(slot).MapCount != 0)
        {
            return;
        }

        Cache!.Remove(slot, pfn, 0);
        frame.SwapSlot = FrameInfo.NoSwapSlot;
        frame.ClearFlags(FrameFlags.SwapCache);
        frame.SetFlags(FrameFlags.Dirty);
        area.ClearCache(slot);
        _memory.Put(pfn); // the swap cache's reference; the caller's mapping still holds one
    }

    /// <summary>True when swap is more than half used (Linux's <c>vm_swap_full</c>): swap-in then frees the slots it can.</summary>
    internal bool SwapFull => Area?.VmSwapFull ?? false;

    /// <summary>
    /// A swap PTE went away (zap, munmap, exit, MADV_DONTNEED/FREE): drops its reference on the slot, and when no PTE
    /// is left and an idle page still caches the slot, takes that page out of the cache so it can be freed (Linux's
    /// <c>free_swap_and_cache</c>). Call with no page-table lock held.
    /// </summary>
    internal void FreeSwapEntry(ulong slot)
    {
        var area = Area!;
        var cache = Cache!;
        if (area.FreeReference(slot))
        {
            cache.ClearShadow(slot);
            return;
        }

        var usage = area.GetUsage(slot);
        if (usage.MapCount != 0 || !usage.HasCache || !cache.TryGetFrame(slot, out var pfn) || !_memory.TryGet(pfn))
        {
            return;
        }

        ref var frame = ref _memory.Frame(pfn);
        if (!frame.Has(FrameFlags.PageTable) && !frame.TestAndSetFlag(FrameFlags.Locked))
        {
            if (frame.Has(FrameFlags.SwapCache) && frame.SwapSlot == slot && frame.MapCount == 0 && area.GetUsage(slot).MapCount == 0)
            {
                cache.Remove(slot, pfn, 0);
                frame.SwapSlot = FrameInfo.NoSwapSlot;
                frame.ClearFlags(FrameFlags.SwapCache);
                frame.ClearFlags(FrameFlags.Locked);
                area.ClearCache(slot);
                _memory.Put(pfn); // the swap cache's reference
            }
            else
            {
                frame.ClearFlags(FrameFlags.Locked);
            }
        }

        _memory.Put(pfn);
    }

    /// <summary>A swap PTE was replaced by a present one for a page the swap cache holds: drops its slot reference (the cache keeps the slot).</summary>
    internal void FreeSwapReference(ulong slot) => Area!.FreeReference(slot);

    /// <summary>
    /// A zap dropped a mapping of a swap-cache page (Linux's <c>free_swap_cache</c>): when nothing maps the page any
    /// more and no swap PTE names its slot, the page leaves the cache (trying its lock; a busy page is left to reclaim).
    /// The caller holds a reference.
    /// </summary>
    internal void FreeIdleSwapCache(Pfn pfn)
    {
        ref var frame = ref _memory.Frame(pfn);
        if (Area is not { } area || frame.TestAndSetFlag(FrameFlags.Locked))
        {
            return;
        }

        if (frame.Has(FrameFlags.SwapCache) && frame.MapCount == 0 && area.GetUsage(frame.SwapSlot).MapCount == 0)
        {
            var slot = (ulong)frame.SwapSlot;
            Cache!.Remove(slot, pfn, 0);
            frame.SwapSlot = FrameInfo.NoSwapSlot;
            frame.ClearFlags(FrameFlags.SwapCache | FrameFlags.Locked);
            area.ClearCache(slot);
            _memory.Put(pfn); // the swap cache's reference; the caller's keeps the frame
            return;
        }

        frame.ClearFlags(FrameFlags.Locked);
    }

    /// <summary>A new reference for a forked copy of a swap PTE (<c>swap_duplicate</c>).</summary>
    internal void DuplicateSwapEntry(ulong slot) => Area!.Duplicate(slot);

    /// <summary>Takes a reference and the page lock of a frame the swap cache named, and confirms it still caches <paramref name="slot"/>.</summary>
    private bool TryLockCachedFrame(Pfn pfn, ulong slot)
    {
        if (!_memory.TryGet(pfn))
        {
            return false; // being freed (its entry is about to become a shadow)
        }

        ref var frame = ref _memory.Frame(pfn);
        if (frame.Has(FrameFlags.PageTable))
        {
            _memory.Put(pfn); // freed and reused as a page table since the lookup
            return false;
        }

        LockPage(ref frame);
        if (frame.Has(FrameFlags.SwapCache) && frame.SwapSlot == slot && frame.Has(FrameFlags.Uptodate))
        {
            return true;
        }

        frame.ClearFlags(FrameFlags.Locked);
        _memory.Put(pfn);
        return false;
    }

    /// <summary>
    /// The miss path: the caller owns <paramref name="slot"/>'s HAS_CACHE. Allocates the target frame, plans a readahead
    /// window around it, reads the window's runs, and publishes every page that read back intact.
    /// </summary>
    private SwapPage ReadIn(Mm mm, ulong slot)
    {
        var area = Area!;
        var cache = Cache!;
        if (!TryAllocateAnon(mm, zero: false, mayReclaim: true, out var target))
        {
            area.ClearCache(slot);
            return new SwapPage(SwapPageStatus.OutOfMemory, default, false, SwapIoStatus.Ok, false);
        }

        var shadow = PublishLocked(target, slot);
        Span<ulong> plan = stackalloc ulong[Readahead!.MaxPages];
        Span<ulong> pages = stackalloc ulong[Readahead.MaxPages];
        Span<uint> frames = stackalloc uint[Readahead.MaxPages];
        var planned = Readahead.Plan(slot, area.SlotCount, plan);
        var count = 0;
        foreach (var candidate in plan[..planned])
        {
            if (candidate == slot)
            {
                pages[count] = slot;
                frames[count++] = (uint)target.Value;
                continue;
            }

            if (area.GetUsage(candidate).MapCount == 0 || cache.TryGetFrame(candidate, out _)
                || area.TrySetCache(candidate) != SwapCachePrepareResult.Prepared)
            {
                continue;
            }

            if (!TryAllocateAnon(mm, zero: false, mayReclaim: false, out var extra))
            {
                area.ClearCache(candidate);
                continue;
            }

            var extraShadow = PublishLocked(extra, candidate);
            if (MultiGen && extraShadow != 0)
            {
                LruGenRefault(extraShadow, extra); // read ahead inside the fault, as Linux's swap-in counts each page it adds
            }

            _memory.Frame(extra).SetFlags(FrameFlags.Readahead);
            pages[count] = candidate;
            frames[count++] = (uint)extra.Value;
        }

        // Plan order is ascending with the target last; sort so contiguous slots form runs.
        SortBySlot(pages[..count], frames[..count]);
        var failure = SwapIoStatus.Ok;
        var runStart = 0;
        for (var i = 1; i <= count; i++)
        {
            if (i < count && pages[i] == pages[i - 1] + 1)
            {
                continue;
            }

            var status = ReadRun(pages[runStart..i], frames[runStart..i], target);
            if (status != SwapIoStatus.Ok)
            {
                failure = status;
            }

            runStart = i;
        }

        Interlocked.Add(ref _swapRa, count - 1);
        if (failure != SwapIoStatus.Ok)
        {
            Interlocked.Increment(ref _memoryFailures);
            return new SwapPage(SwapPageStatus.MemoryFailure, default, true, failure, false);
        }

        Interlocked.Increment(ref _pgmajfault);
        var active = shadow != 0 && WorkingsetRefault(shadow, target);
        LruAdd(target, active, inFault: true);
        return new SwapPage(SwapPageStatus.Locked, target, Major: true, SwapIoStatus.Ok, active);
    }

    /// <summary>
    /// Reads one run of contiguous slots straight into their frames (one <c>preadv</c> on a Linux file). Read-ahead pages
    /// that read back intact are unlocked and put on the LRU (the cache keeps them); any page that failed is taken out
    /// of the cache and freed. Returns the target's status (Ok when the target is not in this run or read back intact).
    /// </summary>
    private SwapIoStatus ReadRun(ReadOnlySpan<ulong> slots, ReadOnlySpan<uint> frames, Pfn target)
    {
        Span<nint> addresses = stackalloc nint[slots.Length];
        for (var i = 0; i < slots.Length; i++)
        {
            addresses[i] = FrameAddress(new Pfn(frames[i]));
        }

        // The frames are new, locked swap-cache pages nobody maps: a failed read leaves poison in them, and they are freed.
        var trace = _host.Trace;
        var started = trace is null ? 0 : Stopwatch.GetTimestamp();
        var result = Area!.ReadFrames(slots[0], addresses);
        trace?.SwapIo(write: false, slots[0], slots.Length, Area.CountSameFilled(slots[0], slots.Length), result.IsOk, started);
        var firstBad = result.IsOk ? slots.Length : (int)(result.Slot - slots[0]);
        var targetStatus = SwapIoStatus.Ok;

        // Read ahead inside the fault: the multi-gen LRU's youngest, as Linux's lru_gen_in_fault. The run's pages go on
        // their lists together (one LRU lock for the run, as Linux's per-CPU folio batch), before any is unlocked.
        LruAddReadahead(frames[..firstBad], target);
        for (var i = 0; i < slots.Length; i++)
        {
            var pfn = new Pfn(frames[i]);
            ref var frame = ref _memory.Frame(pfn);
            if (i < firstBad)
            {
                frame.SetFlags(FrameFlags.Uptodate);
                if (pfn != target)
                {
                    frame.ClearFlags(FrameFlags.Locked);
                    _memory.Put(pfn); // ours; the swap cache keeps its own
                }

                continue;
            }

            // Never hand out a page whose read failed: the slot keeps its references and is read again next time.
            if (pfn == target)
            {
                targetStatus = result.IsOk ? SwapIoStatus.ChecksumMismatch : result.Status;
            }

            Cache!.Remove(slots[i], pfn, 0);
            frame.SwapSlot = FrameInfo.NoSwapSlot;
            frame.ClearFlags(FrameFlags.SwapCache | FrameFlags.Readahead | FrameFlags.Locked);
            Area.ClearCache(slots[i]);
            _memory.Put(pfn); // the swap cache's
            _memory.Put(pfn); // ours: frees the frame (it is on no list)
        }

        return targetStatus;
    }

    /// <summary>
    /// <see cref="LruAdd"/> (in a fault) for the read-ahead pages of a run that read back intact, every frame but
    /// <paramref name="target"/> (which the fault adds after its workingset test): consecutive frames of one lruvec are
    /// added under one hold of its lock.
    /// </summary>
    private void LruAddReadahead(ReadOnlySpan<uint> frames, Pfn target)
    {
        var i = 0;
        while (i < frames.Length)
        {
            if (frames[i] == target.Value)
            {
                i++;
                continue;
            }

            var lruvec = LruvecOf(ref _memory.Frame(new Pfn(frames[i])));
            lock (lruvec.Lock)
            {
                for (; i < frames.Length; i++)
                {
                    var pfn = new Pfn(frames[i]);
                    if (pfn == target)
                    {
                        continue;
                    }

                    if (!ReferenceEquals(LruvecOf(ref _memory.Frame(pfn)), lruvec))
                    {
                        break;
                    }

                    LruAddLocked(lruvec, pfn, active: false, inFault: true);
                }
            }
        }
    }

    /// <summary>Makes a new, locked frame the swap-cache page of <paramref name="slot"/> (whose HAS_CACHE the caller owns); returns the shadow it replaced.</summary>
    private ulong PublishLocked(Pfn pfn, ulong slot)
    {
        ref var frame = ref _memory.Frame(pfn);
        frame.SetFlags(FrameFlags.Locked | FrameFlags.SwapBacked | FrameFlags.SwapCache);
        frame.SwapSlot = (uint)slot;
        _memory.Get(pfn); // the swap cache's reference
        return Cache!.Insert(slot, pfn);
    }

    /// <summary>
    /// Linux's <c>workingset_refault</c> for an anonymous page: the refault distance is how far the evicting lruvec's
    /// clock moved since the eviction; a page that would have stayed resident with that much more memory (distance at
    /// most the active list's size) is activated at once. Returns true to activate.
    /// </summary>
    private bool WorkingsetRefault(ulong shadow, Pfn pfn)
    {
        if (MultiGen)
        {
            return LruGenRefault(shadow, pfn);
        }

        Interlocked.Increment(ref _workingsetRefault);
        var lruvecs = Volatile.Read(ref _lruvecs);
        var index = ShadowEntry.LruvecOf(shadow);
        if (index >= lruvecs.Length)
        {
            return false;
        }

        var lruvec = lruvecs[index];
        var distance = ShadowEntry.Distance(shadow, lruvec.NonresidentAge);
        if (ShadowEntry.WasWorkingset(shadow))
        {
            Interlocked.Increment(ref _workingsetRestore);
            _memory.Frame(pfn).SetFlags(FrameFlags.Workingset);
        }

        if (distance > lruvec.ActiveCount)
        {
            return false;
        }

        Interlocked.Increment(ref _workingsetActivate);
        lruvec.AgeNonresident();
        return true;
    }

    /// <summary>Waits for a data frame's page lock (it is held across swap I/O, so the wait backs off to sleeping).</summary>
    private static void LockPage(ref FrameInfo frame)
    {
        var spin = default(SpinWait);
        while (frame.TestAndSetFlag(FrameFlags.Locked))
        {
            spin.SpinOnce(sleep1Threshold: 20);
        }
    }

    private static void SortBySlot(Span<ulong> slots, Span<uint> frames)
    {
        for (var i = 1; i < slots.Length; i++)
        {
            for (var j = i; j > 0 && slots[j - 1] > slots[j]; j--)
            {
                (slots[j - 1], slots[j]) = (slots[j], slots[j - 1]);
                (frames[j - 1], frames[j]) = (frames[j], frames[j - 1]);
            }
        }
    }
}
