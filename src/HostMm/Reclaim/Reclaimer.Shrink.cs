using System.Diagnostics;
using Hypervisor.HostMm.Frames;
using Hypervisor.HostMm.Swap;

namespace Hypervisor.HostMm.Reclaim;

/// <summary>Shrinking the LRU lists: isolation, aging, the per-page decision, pageout and freeing.</summary>
public sealed partial class Reclaimer
{
    /// <summary>
    /// Reclaims up to <paramref name="pages"/> from the lruvecs of <paramref name="cgroup"/> (all cgroups when null) on
    /// <paramref name="node"/> (all nodes when -1), round-robin from a rotating cursor. Returns the pages freed.
    /// </summary>
    private long ReclaimFrom(MemoryCgroup? cgroup, int node, long pages, ScanControl control)
    {
        if (!CanReclaimAnon)
        {
            // Linux's can_reclaim_anon_pages: with no swap space anonymous lists are not scanned at all.
            return 0;
        }

        var lruvecs = Volatile.Read(ref _lruvecs);
        long reclaimed = 0;
        var start = (uint)Interlocked.Increment(ref _cursor);
        for (var i = 0; i < lruvecs.Length && reclaimed < pages; i++)
        {
            var lruvec = lruvecs[(int)((start + (uint)i) % (uint)lruvecs.Length)];
            if ((cgroup is not null && !ReferenceEquals(lruvec.Cgroup, cgroup)) || (node >= 0 && lruvec.Node != node) || lruvec.Count == 0)
            {
                continue;
            }

            reclaimed += MultiGen
                ? ShrinkLruvecMultiGen(lruvec, pages - reclaimed, control)
                : ShrinkLruvec(lruvec, pages - reclaimed, control);
        }

        return reclaimed;
    }

    /// <summary>
    /// Linux's <c>shrink_lruvec</c> for the anonymous lists: ages the active list when the inactive one runs low, and
    /// reclaims from the inactive list, until <paramref name="pages"/> are freed or twice the lists have been scanned.
    /// </summary>
    private long ShrinkLruvec(Lruvec lruvec, long pages, ScanControl control)
    {
        long reclaimed = 0;
        long scanned = 0;
        var limit = (2 * lruvec.Count) + pages + _options.BatchPages;
        Span<uint> batch = stackalloc uint[_options.BatchPages];
        while (reclaimed < pages && scanned < limit)
        {
            if (lruvec.InactiveIsLow() || lruvec.InactiveCount == 0)
            {
                scanned += ShrinkActive(lruvec, batch);
            }

            var (inactiveScanned, freed) = ShrinkInactive(lruvec, batch, control);
            if (inactiveScanned == 0 && (lruvec.ActiveCount == 0 || ShrinkActive(lruvec, batch) == 0))
            {
                break;
            }

            scanned += inactiveScanned;
            reclaimed += freed;
        }

        return reclaimed;
    }

    /// <summary>
    /// Linux's <c>shrink_active_list</c> for anonymous pages: isolates a batch from the active tail, harvests each
    /// page's accessed bits (so the inactive list sees only references made after this), and deactivates every one of
    /// them — an anonymous page stays active only by being referenced again on the inactive list.
    /// </summary>
    private int ShrinkActive(Lruvec lruvec, Span<uint> batch)
    {
        var count = Isolate(lruvec, LruList.Active, batch);
        if (count == 0)
        {
            return 0;
        }

        Interlocked.Add(ref _pgrefill, count);
        Span<bool> age = stackalloc bool[count];
        for (var i = 0; i < count; i++)
        {
            age[i] = _memory.Frame(new Pfn(batch[i])).MapCount > 0;
        }

        // The answers do not matter here (every page is deactivated): only the harvest of the accessed bits does.
        Span<int> references = stackalloc int[count];
        Span<bool> complete = stackalloc bool[count];
        FolioReferencedBatch(batch[..count], age, references, complete);
        foreach (var index in batch[..count])
        {
            var pfn = new Pfn(index);
            _memory.Frame(pfn).SetFlags(FrameFlags.Workingset);
            PutBack(pfn, LruList.Inactive);
        }

        Interlocked.Add(ref _pgdeactivate, count);
        return count;
    }

    /// <summary>Linux's <c>shrink_inactive_list</c>: isolates a batch from the inactive tail and tries to free each page.</summary>
    private (int Scanned, int Reclaimed) ShrinkInactive(Lruvec lruvec, Span<uint> batch, ScanControl control)
    {
        var count = Isolate(lruvec, LruList.Inactive, batch);
        if (count == 0)
        {
            return (0, 0);
        }

        Interlocked.Add(ref control.Direct ? ref _pgscanDirect : ref _pgscanKswapd, count);
        var reclaimed = 0;
        Span<FolioOutcome> outcomes = stackalloc FolioOutcome[count];
        ShrinkFolios(lruvec, batch[..count], control, outcomes);
        for (var i = 0; i < count; i++)
        {
            var pfn = new Pfn(batch[i]);
            switch (outcomes[i])
            {
                case FolioOutcome.Reclaimed:
                    reclaimed++;
                    break;
                case FolioOutcome.Activate:
                    Interlocked.Increment(ref _pgactivate);
                    lruvec.AgeNonresident();
                    PutBack(pfn, LruList.Active);
                    break;
                default:
                    PutBack(pfn, LruList.Inactive);
                    break;
            }
        }

        Interlocked.Add(ref control.Direct ? ref _pgstealDirect : ref _pgstealKswapd, reclaimed);
        return (count, reclaimed);
    }

    /// <summary>
    /// Takes up to <c>batch.Length</c> frames off the tail of <paramref name="list"/>, each with one reference and
    /// <see cref="FrameFlags.Isolated"/> (Linux's <c>isolate_lru_folios</c>). A frame whose count is already 0 is being
    /// freed and is left where it is: its freer takes it off under the same lock.
    /// </summary>
    private int Isolate(Lruvec lruvec, LruList list, Span<uint> batch)
    {
        var count = 0;
        lock (lruvec.Lock)
        {
            var looked = 0;
            IsolateFromTailLocked(lruvec, lruvec.TailLocked(list), batch, ref count, ref looked);

            // Counted before the lock goes: a direct reclaimer that finds the lists empty must also see these frames
            // isolated (and wait for them), or a reclaimer preempted between the two would leave it to declare the
            // cgroup out of memory while its pages are merely in another reclaimer's hands.
            Interlocked.Add(ref _isolated, count);
        }

        return count;
    }

    /// <summary>
    /// Walks a list from <paramref name="tail"/> towards its head (the caller holds <see cref="Lruvec.Lock"/>), taking
    /// each frame whose reference can still be got off the list with <see cref="FrameFlags.Isolated"/> into
    /// <paramref name="batch"/>, until the batch is full or <c>4 × batch.Length</c> frames were looked at in all
    /// (<paramref name="looked"/> carries that count across lists). A frame whose count is 0 is being freed and is left
    /// to its freer. Shared by both LRU policies.
    /// </summary>
    private void IsolateFromTailLocked(Lruvec lruvec, uint tail, Span<uint> batch, ref int count, ref int looked)
    {
        var frames = _memory.FrameTable;
        var index = tail;
        while (index != FrameInfo.NoFrame && count < batch.Length && looked < batch.Length * 4)
        {
            looked++;
            var previous = frames[(int)index].LruPrev;
            if (_memory.TryGet(new Pfn(index)))
            {
                lruvec.RemoveLocked(frames, index);
                frames[(int)index].SetFlags(FrameFlags.Isolated);
                batch[count++] = index;
            }

            index = previous;
        }
    }

    /// <summary>
    /// Returns an isolated frame to the head of <paramref name="list"/> and drops the isolation reference. Under the
    /// multi-gen policy <see cref="LruList.Active"/> means the youngest generation and <see cref="LruList.Inactive"/> the
    /// oldest (Linux's <c>lru_gen_add_folio</c> for an activated and for a reclaiming put-back).
    /// </summary>
    /// <remarks>
    /// The frame goes to the lruvec its cgroup names now, the one it was isolated from — unless its charge moved away
    /// while it was isolated (a huge page migration hands the old frames' charge to the copy): then it goes on no list.
    /// Put back on the old list, its release would later unlink it from the root's list (an uncharged frame's lruvec)
    /// under the root's lock — another list's node — and splice the cgroup's frames into the root's list (the stress
    /// demo's auditor caught that).
    /// </remarks>
    internal void PutBack(Pfn pfn, LruList list)
    {
        ref var frame = ref _memory.Frame(pfn);
        if (frame.MemoryCgroupId == 0)
        {
            // Uncharged while isolated: its charge went with its contents to a copy, and the frame is on its way to the
            // free list; no LRU holds an uncharged frame.
            frame.ClearFlags(FrameFlags.Isolated);
            Interlocked.Decrement(ref _isolated);
            _memory.Put(pfn);
            return;
        }

        var lruvec = LruvecOf(ref frame);
        lock (lruvec.Lock)
        {
            frame.ClearFlags(FrameFlags.Isolated);
            AddPolicyLocked(lruvec, (uint)pfn.Value, list);
        }

        Interlocked.Decrement(ref _isolated);
        _memory.Put(pfn);
    }

    /// <summary>
    /// Linux's <c>shrink_folio_list</c> for a batch of isolated anonymous frames of <paramref name="lruvec"/> (each
    /// caller's isolation reference is consumed when its frame is freed, else returned to the caller's put-back, by
    /// <paramref name="outcomes"/>): check references, add to the swap cache, unmap every mapping
    /// (<see cref="TryToUnmap"/>), write the dirty pages out, and drop the clean, unmapped ones. The writes are
    /// gathered: dirty pages whose slots are contiguous (slots come from one cluster in batch order, so they usually
    /// are) go to the device in one <see cref="SwapArea.WriteRun"/> per run of up to <see cref="MaxWriteRunPages"/>.
    /// </summary>
    /// <remarks>
    /// Between the unmap and the end of its run's write each pending frame stays <see cref="FrameFlags.Locked"/>,
    /// unmapped and in the swap cache with <see cref="FrameFlags.Dirty"/> clear, so nothing can redirty it and a fault
    /// on its swap entry waits on the lock. A failed run write keeps every page of the run resident, dirty and in
    /// the swap cache (Linux's <c>__end_swap_bio_write</c>), each counted as a write error; a later pass writes it.
    /// With <paramref name="writeback"/> each run goes to the I/O thread (<see cref="SwapWriteback"/>) with its pages'
    /// locks and isolation references; their outcome is <see cref="FolioOutcome.Writeback"/> and the completion frees
    /// or puts them back.
    /// </remarks>
    private void ShrinkFolios(Lruvec lruvec, ReadOnlySpan<uint> batch, ScanControl control, Span<FolioOutcome> outcomes, WritebackTicket? writeback = null)
    {
        // Phase 1, per frame: references, the swap cache. Phase 2: the mapped ones are unmapped together (runs of one
        // process's consecutive PTEs under one notifier range, see UnmapBatch). Phase 3, per frame: the rest of the
        // decision. Then the writes, in runs of contiguous slots.
        Span<bool> unmap = stackalloc bool[batch.Length];
        Span<bool> pageout = stackalloc bool[batch.Length];
        var unmapCount = 0;

        // Phase 0, per frame: folio_trylock. Under the classic policy the locked, mapped frames are then aged together
        // (FolioReferencedBatch) before phase 1 decides per frame with folio_check_references' rule.
        Span<bool> locked = stackalloc bool[batch.Length];
        Span<bool> aged = stackalloc bool[batch.Length];
        Span<int> references = stackalloc int[batch.Length];
        Span<bool> complete = stackalloc bool[batch.Length];
        var batchAging = !MultiGen && !control.IgnoreReferences;
        for (var i = 0; i < batch.Length; i++)
        {
            ref var frame = ref _memory.Frame(new Pfn(batch[i]));
            locked[i] = !frame.TestAndSetFlag(FrameFlags.Locked);
            aged[i] = batchAging && locked[i] && frame.MapCount > 0;
        }

        if (batchAging)
        {
            FolioReferencedBatch(batch, aged, references, complete);
        }

        // When references are ignored every locked anonymous page outside the swap cache gets a slot: they are taken in
        // one allocation (one cluster lock, ascending slots) rather than one per page.
        Span<ulong> reserved = stackalloc ulong[control.IgnoreReferences ? batch.Length : 0];
        var reservedCount = 0;
        if (control.IgnoreReferences && Area is not null)
        {
            var needed = 0;
            for (var i = 0; i < batch.Length; i++)
            {
                ref var frame = ref _memory.Frame(new Pfn(batch[i]));
                needed += locked[i] && frame.Has(FrameFlags.SwapBacked) && !frame.Has(FrameFlags.SwapCache) ? 1 : 0;
            }

            reservedCount = needed == 0 ? 0 : Area.AllocateBatch(reserved[..needed]);
        }

        var nextReserved = 0;
        for (var i = 0; i < batch.Length; i++)
        {
            if (!locked[i])
            {
                outcomes[i] = FolioOutcome.Keep;
                continue;
            }

            outcomes[i] = ShrinkFolioPrepare(lruvec, new Pfn(batch[i]), control, aged[i] ? references[i] : -1, complete[i], reserved[..reservedCount], ref nextReserved, out unmap[i], out pageout[i]);
            unmapCount += unmap[i] ? 1 : 0;
        }

        for (; nextReserved < reservedCount; nextReserved++)
        {
            Area!.ClearCache(reserved[nextReserved]); // not needed after all: the slot is free again
        }

        // A subpage of a transparent huge page is unmapped as a 4 KiB page: its huge mappings are split first (Linux splits
        // a huge folio it decided to reclaim before swap-out, as it did for years). Only pages reclaim decided to unmap.
        for (var i = 0; i < batch.Length; i++)
        {
            if (unmap[i] && _memory.Frame(new Pfn(batch[i])).Has(FrameFlags.PmdMapped))
            {
                SplitHugeMappings(new Pfn(batch[i]));
            }
        }

        if (unmapCount > 0)
        {
            Span<UnmapOutcome> unmapped = stackalloc UnmapOutcome[batch.Length];
            UnmapBatch(batch, unmap, unmapped);
            for (var i = 0; i < batch.Length; i++)
            {
                if (unmap[i])
                {
                    outcomes[i] = ShrinkFolioAfterUnmap(lruvec, new Pfn(batch[i]), unmapped[i], out pageout[i]);
                }
            }
        }

        Span<int> pending = stackalloc int[batch.Length];
        var pendingCount = 0;
        for (var i = 0; i < batch.Length; i++)
        {
            if (pageout[i])
            {
                pending[pendingCount++] = i;
            }
        }

        if (pendingCount == 0)
        {
            return;
        }

        // The run's frames go to the device where they are (one pwritev on a Linux file): no copy into a gather buffer.
        Span<nint> frames = stackalloc nint[MaxWriteRunPages];
        var start = 0;
        while (start < pendingCount)
        {
            var firstPfn = new Pfn(batch[pending[start]]);
            var firstSlot = (ulong)_memory.Frame(firstPfn).SwapSlot;
            var end = start + 1;
            while (end < pendingCount && end - start < MaxWriteRunPages
                   && (ulong)_memory.Frame(new Pfn(batch[pending[end]])).SwapSlot == firstSlot + (ulong)(end - start))
            {
                end++;
            }

            if (writeback is not null)
            {
                SubmitWriteback(lruvec, batch, pending, start, end, firstSlot, writeback);
                for (var j = start; j < end; j++)
                {
                    outcomes[pending[j]] = FolioOutcome.Writeback;
                }

                start = end;
                continue;
            }

            var trace = _host.Trace;
            var started = trace is null ? 0 : Stopwatch.GetTimestamp();
            SwapIoResult written;
            if (end - start == 1)
            {
                written = Area!.Write(firstSlot, _memory.FrameBytes(firstPfn));
            }
            else
            {
                for (var j = start; j < end; j++)
                {
                    frames[j - start] = FrameAddress(new Pfn(batch[pending[j]]));
                }

                written = Area!.WriteFrames(firstSlot, frames[..(end - start)]);
            }

            trace?.SwapIo(write: true, firstSlot, end - start, Area.CountSameFilled(firstSlot, end - start), written.Status == SwapIoStatus.Ok, started);

            for (var j = start; j < end; j++)
            {
                var index = pending[j];
                outcomes[index] = FinishPageout(lruvec, new Pfn(batch[index]), written.Status == SwapIoStatus.Ok);
            }

            start = end;
        }
    }

    /// <summary>The native address of <paramref name="pfn"/>'s bytes, for a gathered swap transfer (the caller holds the frame locked).</summary>
    // unsafe: the frame arena's raw address, handed to the device as an iovec base.
    private unsafe nint FrameAddress(Pfn pfn) => (nint)_memory.FrameAddress(pfn);

    /// <summary>
    /// Phase 1 of <c>shrink_folio_list</c> for one frame the caller has locked (<see cref="FrameFlags.Locked"/>): the
    /// reference check and <c>add_to_swap</c>. Returns the outcome, unless it sets <paramref name="unmap"/> (the frame is
    /// mapped: it is left locked for <see cref="UnmapBatch"/> and <see cref="ShrinkFolioAfterUnmap"/>, which the caller
    /// must call) or <paramref name="pageout"/> (see <see cref="ShrinkUnmapped"/>); the outcome is then undefined.
    /// <paramref name="agedReferences"/> is the frame's young mappings when the caller already aged it
    /// (<see cref="FolioReferencedBatch"/>, with <paramref name="agedComplete"/>), or -1 to age it here.
    /// </summary>
    private FolioOutcome ShrinkFolioPrepare(Lruvec lruvec, Pfn pfn, ScanControl control, int agedReferences, bool agedComplete, ReadOnlySpan<ulong> reserved, ref int nextReserved, out bool unmap, out bool pageout)
    {
        unmap = false;
        pageout = false;
        ref var frame = ref _memory.Frame(pfn);
        var locked = true;
        try
        {
            if (agedReferences >= 0)
            {
                var decision = DecideReferences(pfn, agedReferences, agedComplete);
                if (decision != FolioOutcome.Reclaimed)
                {
                    return decision;
                }
            }
            else if (frame.MapCount > 0 && !control.IgnoreReferences)
            {
                var decision = MultiGen ? CheckReferencesMultiGen(lruvec, pfn) : CheckReferences(pfn);
                if (decision != FolioOutcome.Reclaimed)
                {
                    return decision;
                }
            }

            if (frame.Has(FrameFlags.SwapBacked) && !frame.Has(FrameFlags.SwapCache))
            {
                // No swap, or swap full: an anonymous page cannot go anywhere (Linux activates it).
                ulong newSlot;
                if (nextReserved < reserved.Length)
                {
                    newSlot = reserved[nextReserved++];
                }
                else if (Area is null || Cache is null || !Area.TryAllocate(out newSlot))
                {
                    return FolioOutcome.Activate;
                }

                AddToSwapCache(pfn, newSlot);
            }

            if (frame.MapCount > 0)
            {
                unmap = true;
                locked = false; // handed to phase 3
                return FolioOutcome.Keep;
            }

            return ShrinkUnmapped(lruvec, pfn, ref frame, ref locked, out pageout);
        }
        finally
        {
            if (locked)
            {
                frame.ClearFlags(FrameFlags.Locked);
            }
        }
    }

    /// <summary>Phase 3 of <c>shrink_folio_list</c> for a locked frame phase 2 tried to unmap: returns the outcome, or sets <paramref name="pageout"/>.</summary>
    private FolioOutcome ShrinkFolioAfterUnmap(Lruvec lruvec, Pfn pfn, UnmapOutcome unmapped, out bool pageout)
    {
        pageout = false;
        ref var frame = ref _memory.Frame(pfn);
        var locked = true;
        try
        {
            if (unmapped == UnmapOutcome.Redirtied)
            {
                frame.SetFlags(FrameFlags.SwapBacked);
                return FolioOutcome.Activate;
            }

            if (frame.MapCount > 0)
            {
                return FolioOutcome.Activate;
            }

            return ShrinkUnmapped(lruvec, pfn, ref frame, ref locked, out pageout);
        }
        finally
        {
            if (locked)
            {
                frame.ClearFlags(FrameFlags.Locked);
            }
        }
    }

    /// <summary>
    /// The end of <c>shrink_folio_list</c>'s decision for a locked, unmapped frame: a lazily freed clean page is
    /// discarded; a dirty swap-cache page is set for pageout (<paramref name="pageout"/>: it is left
    /// <see cref="FrameFlags.Locked"/> with <see cref="FrameFlags.Dirty"/> cleared for <see cref="FinishPageout"/>, which
    /// the caller must call; the outcome is then undefined); a clean one leaves the swap cache and is freed.
    /// <paramref name="locked"/> is cleared when the frame's lock was released or handed on.
    /// </summary>
    private FolioOutcome ShrinkUnmapped(Lruvec lruvec, Pfn pfn, ref FrameInfo frame, ref bool locked, out bool pageout)
    {
        pageout = false;
        if (!frame.Has(FrameFlags.SwapBacked))
        {
            if (frame.Has(FrameFlags.Dirty) || !_memory.TryFreeze(pfn, 1))
            {
                frame.SetFlags(FrameFlags.SwapBacked);
                return FolioOutcome.Activate;
            }

            frame.ClearRmap();
            frame.ClearFlags(FrameFlags.Isolated | FrameFlags.Locked);
            locked = false;
            _memory.FreeFrozen(pfn);
            Interlocked.Decrement(ref _isolated);
            Interlocked.Increment(ref _pglazyfreed);
            return FolioOutcome.Reclaimed;
        }

        if (frame.Has(FrameFlags.Dirty))
        {
            // pageout: the frame is unmapped and locked, so nothing can redirty it until the write completes.
            frame.ClearFlags(FrameFlags.Dirty);
            pageout = true;
            locked = false;
            return FolioOutcome.Keep;
        }

        return RemoveMapping(lruvec, pfn, ref frame, frame.SwapSlot, ref locked) ? FolioOutcome.Reclaimed : FolioOutcome.Keep;
    }

    /// <summary>
    /// The end of pageout for a locked frame whose write finished (<paramref name="written"/>) or failed: a written
    /// page is removed from the swap cache and freed when nobody else uses it; a failed one stays resident and dirty
    /// behind its swap PTEs (faults find it in the swap cache) and goes back to the active list.
    /// </summary>
    private FolioOutcome FinishPageout(Lruvec lruvec, Pfn pfn, bool written)
    {
        ref var frame = ref _memory.Frame(pfn);
        var locked = true;
        try
        {
            if (!written)
            {
                frame.SetFlags(FrameFlags.Dirty);
                Interlocked.Increment(ref _swapWriteErrors);
                return FolioOutcome.Activate;
            }

            return RemoveMapping(lruvec, pfn, ref frame, frame.SwapSlot, ref locked) ? FolioOutcome.Reclaimed : FolioOutcome.Keep;
        }
        finally
        {
            if (locked)
            {
                frame.ClearFlags(FrameFlags.Locked);
            }
        }
    }

    /// <summary>
    /// Linux's <c>__remove_mapping</c> for a clean, unmapped swap-cache frame: freezes its references (exactly the
    /// swap cache's and the isolation's, or someone else is using it and it stays), leaves a shadow entry in its slot,
    /// drops the slot's cache ownership and frees the frame.
    /// </summary>
    private bool RemoveMapping(Lruvec lruvec, Pfn pfn, ref FrameInfo frame, ulong slot, ref bool locked)
    {
        if (!_memory.TryFreeze(pfn, 2))
        {
            return false;
        }

        if (frame.Has(FrameFlags.Dirty) || frame.MapCount != 0)
        {
            _memory.Unfreeze(pfn, 2);
            return false;
        }

        var shadow = MultiGen
            ? LruGenEviction(lruvec, frame.Flags)
            : ShadowEntry.Make(lruvec.Index, lruvec.AgeNonresident(), frame.Has(FrameFlags.Workingset));
        Cache!.Remove(slot, pfn, shadow);
        frame.SwapSlot = FrameInfo.NoSwapSlot;
        frame.ClearRmap();
        frame.ClearFlags(FrameFlags.SwapCache | FrameFlags.Isolated | FrameFlags.Locked | FrameFlags.Uptodate);
        locked = false;
        if (Area!.ClearCache(slot))
        {
            Cache.ClearShadow(slot);
        }

        _memory.FreeFrozen(pfn);
        Interlocked.Decrement(ref _isolated);
        Interlocked.Increment(ref _swapCacheReclaimed);
        return true;
    }

    /// <summary>Puts a locked frame into the swap cache under a freshly allocated slot (<c>add_to_swap</c>); the cache takes a reference, and the page is dirty until written.</summary>
    private void AddToSwapCache(Pfn pfn, ulong slot)
    {
        ref var frame = ref _memory.Frame(pfn);
        _memory.Get(pfn);
        Cache!.Insert(slot, pfn);
        frame.SwapSlot = (uint)slot;
        frame.SetFlags(FrameFlags.SwapCache | FrameFlags.Dirty | FrameFlags.Uptodate);
    }

    /// <summary>
    /// <c>folio_check_references</c>: walks the mappings (clearing their accessed bits and asking the secondary MMUs),
    /// then decides with <see cref="FrameFlags.Accessed"/> (PG_referenced): referenced twice — two passes or two
    /// mappings — activates; referenced once keeps the page and remembers it; unreferenced reclaims it. A walk that
    /// could not visit every mapping (a process's mmap lock was busy) keeps the page.
    /// </summary>
    private FolioOutcome CheckReferences(Pfn pfn)
    {
        var references = FolioReferenced(pfn, out var complete);
        return DecideReferences(pfn, references, complete);
    }

    /// <summary><see cref="CheckReferences"/>' decision once the mappings were walked: <paramref name="references"/> young, <paramref name="complete"/> when every mapping was seen.</summary>
    private FolioOutcome DecideReferences(Pfn pfn, int references, bool complete)
    {
        ref var frame = ref _memory.Frame(pfn);
        var referencedBefore = frame.TestAndClearFlag(FrameFlags.Accessed);
        if (references > 0)
        {
            if (referencedBefore || references > 1)
            {
                return FolioOutcome.Activate;
            }

            frame.SetFlags(FrameFlags.Accessed);
            return FolioOutcome.Keep;
        }

        return complete ? FolioOutcome.Reclaimed : FolioOutcome.Keep;
    }

    /// <summary>
    /// The multi-gen decision for a page of the oldest generation: a page found young in any mapping (accessed bit or
    /// secondary MMU, through <c>clear_young</c>; each young mapping also looks around its neighbours) has been used since
    /// it entered its generation and is promoted to the youngest, as workingset; an unreferenced one is reclaimed (its
    /// reference counts go into its shadow); a walk that could not visit every mapping keeps the page.
    /// </summary>
    private FolioOutcome CheckReferencesMultiGen(Lruvec lruvec, Pfn pfn)
    {
        var references = FolioReferenced(pfn, out var complete, lookAround: lruvec);
        if (references > 0)
        {
            // Used through its page tables since it entered the generation: workingset from now on, its reference
            // counts spent (Linux's lru_gen_set_refs); an unreferenced page keeps them for its shadow.
            _memory.Frame(pfn).ReplaceFlags(FrameFlags.Accessed | FrameFlags.LruRefsMask, FrameFlags.Workingset);
            return FolioOutcome.Activate;
        }

        return complete ? FolioOutcome.Reclaimed : FolioOutcome.Keep;
    }

    /// <summary>
    /// Adds a frame that is on no list to <paramref name="list"/> under the policy in force: the classic list itself, or
    /// for the multi-gen LRU the youngest generation (active) or the oldest (inactive). Hold <paramref name="lruvec"/>'s lock.
    /// </summary>
    private void AddPolicyLocked(Lruvec lruvec, uint index, LruList list)
    {
        if (MultiGen)
        {
            lruvec.AddToGenerationLocked(_memory.FrameTable, index, list == LruList.Active ? lruvec.MaxSeq : lruvec.MinSeq);
        }
        else
        {
            lruvec.AddLocked(_memory.FrameTable, index, list);
        }
    }

    /// <summary>
    /// MADV_COLD (<paramref name="pageOut"/> false): each page loses PG_referenced and moves to the head of its
    /// inactive list. MADV_PAGEOUT: each page is isolated and reclaimed now, references ignored (Linux's
    /// <c>reclaim_pages</c>, which counts <c>pswpout</c> but not <c>pgscan</c>/<c>pgsteal</c>). The caller holds one
    /// reference per page, dropped here; pages already isolated by someone else are skipped.
    /// </summary>
    internal long AdviseCold(List<Pfn> pages, bool pageOut)
    {
        // A call of several batches overlaps the writes with the next batches' isolation and unmap (SwapWriteback); it
        // waits for all of them before it returns, so madvise's caller finds every page written or kept, as with
        // synchronous writes.
        var writeback = _options.AsyncWriteback && Writeback is not null && pageOut && pages.Count > _options.BatchPages ? SwapWriteback.Open() : null;
        long reclaimed = 0;
        try
        {
            reclaimed = AdviseColdBatches(pages, pageOut, writeback);
        }
        finally
        {
            if (writeback is not null)
            {
                reclaimed += Writeback!.Drain(writeback);
            }
        }

        return reclaimed;
    }

    /// <summary>The loop of <see cref="AdviseCold"/>: returns the pages it freed itself (not those its writeback frees).</summary>
    private long AdviseColdBatches(List<Pfn> pages, bool pageOut, WritebackTicket? writeback)
    {
        var control = new ScanControl(Direct: false, IgnoreReferences: true);

        // Isolated pages of one lruvec wait in the batch, so their writes gather into runs (ShrinkFolios).
        Span<uint> batch = stackalloc uint[_options.BatchPages];
        Span<FolioOutcome> outcomes = stackalloc FolioOutcome[_options.BatchPages];
        var count = 0;
        Lruvec? batchLruvec = null;
        long reclaimed = 0;
        foreach (var pfn in pages)
        {
            ref var frame = ref _memory.Frame(pfn);
            var lruvec = LruvecOf(ref frame);
            var isolated = false;
            lock (lruvec.Lock)
            {
                if (frame.Has(FrameFlags.Lru))
                {
                    // PG_referenced goes (its counter means nothing without it); MADV_COLD under the multi-gen LRU also
                    // drops the counter and the workingset mark (lru_gen_clear_refs).
                    frame.ClearFlags(MultiGen && !pageOut ? FrameFlags.Accessed | FrameFlags.LruRefsMask | FrameFlags.Workingset : FrameFlags.Accessed);
                    if (pageOut)
                    {
                        lruvec.RemoveLocked(_memory.FrameTable, (uint)pfn.Value);
                        frame.SetFlags(FrameFlags.Isolated);
                        Interlocked.Increment(ref _isolated);
                        isolated = true;
                    }
                    else
                    {
                        lruvec.RemoveLocked(_memory.FrameTable, (uint)pfn.Value);
                        AddPolicyLocked(lruvec, (uint)pfn.Value, LruList.Inactive);
                        Interlocked.Increment(ref _pgdeactivate);
                    }
                }
            }

            if (!isolated)
            {
                _memory.Put(pfn);
                continue;
            }

            // The caller's reference is now the isolation reference.
            if (!CanReclaimAnon && frame.Has(FrameFlags.SwapBacked))
            {
                PutBack(pfn, LruList.Inactive);
                continue;
            }

            if (count > 0 && (count == batch.Length || !ReferenceEquals(lruvec, batchLruvec)))
            {
                reclaimed += ShrinkAdvised(batchLruvec!, batch[..count], control, outcomes[..count], writeback);
                count = 0;
            }

            batchLruvec = lruvec;
            batch[count++] = (uint)pfn.Value;
        }

        if (count > 0)
        {
            reclaimed += ShrinkAdvised(batchLruvec!, batch[..count], control, outcomes[..count], writeback);
        }

        return reclaimed;
    }

    /// <summary>Reclaims a batch of pages isolated by <see cref="AdviseCold"/> and puts back the ones it keeps; returns the pages freed.</summary>
    private long ShrinkAdvised(Lruvec lruvec, ReadOnlySpan<uint> batch, ScanControl control, Span<FolioOutcome> outcomes, WritebackTicket? writeback)
    {
        long reclaimed = 0;
        ShrinkFolios(lruvec, batch, control, outcomes, writeback);
        for (var i = 0; i < batch.Length; i++)
        {
            reclaimed += SettleAdvised(new Pfn(batch[i]), outcomes[i]);
        }

        return reclaimed;
    }

    /// <summary>
    /// Ends an advised page's reclaim by its outcome: 1 when it was freed; else 0, and it goes back to the active list
    /// (activated) or the inactive one (kept), except one under writeback, whose completion frees or puts it back.
    /// </summary>
    private int SettleAdvised(Pfn pfn, FolioOutcome outcome)
    {
        switch (outcome)
        {
            case FolioOutcome.Reclaimed:
                return 1;
            case FolioOutcome.Activate:
                PutBack(pfn, LruList.Active);
                return 0;
            case FolioOutcome.Writeback:
                return 0;
            default:
                PutBack(pfn, LruList.Inactive);
                return 0;
        }
    }
}
