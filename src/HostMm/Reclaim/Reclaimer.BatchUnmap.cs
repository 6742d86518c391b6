using Hypervisor.HostMm.Frames;
using Hypervisor.HostMm.PageTables;

namespace Hypervisor.HostMm.Reclaim;

/// <summary>Reclaim's batched unmap: a run of one process's consecutive PTEs under one notifier range and one TLB flush.</summary>
public sealed partial class Reclaimer
{
    /// <summary>
    /// Phase 2 of <c>shrink_folio_list</c>: unmaps every frame of <paramref name="batch"/> flagged in
    /// <paramref name="flagged"/> (each locked, isolated and mapped), writing each one's result to
    /// <paramref name="results"/>. Frames mapped once, by a process that is the only member of their anon family, in a
    /// swap-cache page, at consecutive addresses of one PTE table and consecutive in the batch (the LRU tail and
    /// <c>madvise</c> hand them over in address order), form a run unmapped in §3's order for the whole run:
    /// start(Clear, run) → under the PTL each PTE replaced by its swap entry, then one TLB flush → the mappings'
    /// references dropped → end. The caller writes and frees after (phase 3 and the write). Everything else — frames
    /// shared by several processes (fork, KSM), lazily freed ones, a process whose mmap lock is busy — goes through
    /// the per-mapping reverse-map walk (<see cref="TryToUnmap"/>).
    /// </summary>
    /// <remarks>
    /// Linux unmaps folio by folio but defers the TLB flush across the batch (<c>set_tlb_ubc_flush_pending</c>, then
    /// <c>try_to_unmap_flush</c> before pageout); here a run shares the notifier range as well, so a secondary MMU zaps
    /// the run's sptes in one invalidation. The order within the range is §3's with the flush deferred to the end of
    /// the run, still under the PTL and before the end, and no frame is freed before the end: each keeps the caller's
    /// isolation reference until phase 3.
    /// </remarks>
    private void UnmapBatch(ReadOnlySpan<uint> batch, ReadOnlySpan<bool> flagged, Span<UnmapOutcome> results)
    {
        var i = 0;
        while (i < batch.Length)
        {
            if (!flagged[i])
            {
                i++;
                continue;
            }

            var run = TryUnmapRun(batch, flagged, i);
            if (run == 0)
            {
                var pfn = new Pfn(batch[i]);
                results[i] = TryToUnmap(pfn, _memory.Frame(pfn).Has(FrameFlags.SwapBacked) ? _memory.Frame(pfn).SwapSlot : SwapSlotNone);
                i++;
                continue;
            }

            results.Slice(i, run).Fill(UnmapOutcome.Done);
            i += run;
        }
    }

    /// <summary>
    /// Unmaps the longest run of batchable frames from <paramref name="first"/> (see <see cref="UnmapBatch"/>); returns
    /// its length, or 0 when the frame at <paramref name="first"/> cannot start one (nothing was done to it then).
    /// </summary>
    private unsafe int TryUnmapRun(ReadOnlySpan<uint> batch, ReadOnlySpan<bool> flagged, int first) // unsafe: the visitor reads the run's frames through a pointer into the pinned batch.
    {
        ref var head = ref _memory.Frame(new Pfn(batch[first]));
        if (!IsBatchable(ref head))
        {
            return 0;
        }

        var family = head.RmapOwner;
        var members = Rmap.MembersOf(family);
        if (members.Length != 1)
        {
            return 0;
        }

        var mm = members[0];
        if (!mm.TryEnterRmapRead(out var taken))
        {
            return 0;
        }

        try
        {
            // Under the mmap lock a fork cannot add a mapping: a mapcount of 1 seen now stays 1 until the walk is done.
            if (head.MapCount != 1 || !mm.TryFindAnonMapping(family, head.RmapIndex, out var start))
            {
                return 0;
            }

            var count = 1;
            var tableEnd = (start.Value | ((HostPageTable.EntriesPerTable * Paging.PageSize) - 1)) + 1;
            while (first + count < batch.Length && flagged[first + count])
            {
                ref var next = ref _memory.Frame(new Pfn(batch[first + count]));
                var expected = start.Value + ((ulong)count * Paging.PageSize);
                if (expected >= tableEnd || !IsBatchable(ref next) || next.MapCount != 1 || next.RmapOwner != family
                    || !mm.TryFindAnonMapping(family, next.RmapIndex, out var address) || address.Value != expected)
                {
                    break;
                }

                count++;
            }

            var end = start + ((ulong)count * Paging.PageSize);
            Span<bool> cleared = stackalloc bool[count];
            var unmapped = 0;
            fixed (uint* frames = batch.Slice(first, count))
            fixed (bool* done = cleared)
            {
                using var invalidation = Invalidation.Begin(mm, start, end, NotifierEvent.Clear);
                var visitor = new RunUnmapVisitor(this, mm, frames, done);
                mm.PageTable.Walk(start, end, allocate: false, ref visitor);
                unmapped = visitor.Unmapped;
                if (unmapped > 0)
                {
                    mm.AddRss(-unmapped);
                    mm.AddSwapEntries(unmapped);
                    for (var k = 0; k < count; k++)
                    {
                        if (cleared[k])
                        {
                            _memory.Put(new Pfn(batch[first + k])); // the mapping's reference; the isolation reference keeps the frame
                        }
                    }
                }
            }

            return count;
        }
        finally
        {
            if (taken)
            {
                mm.ExitRmapRead();
            }
        }
    }

    /// <summary>A frame the batched unmap can take: an anonymous swap-cache page of an anon family, not KSM, mapped once.</summary>
    private static bool IsBatchable(ref FrameInfo frame) =>
        frame.MapCount == 1 && frame.RmapOwner != FrameInfo.NoOwner && !frame.Has(FrameFlags.Ksm)
        && frame.Has(FrameFlags.SwapBacked) && frame.Has(FrameFlags.SwapCache);

    /// <summary>
    /// <c>try_to_unmap_one</c>'s PTE step for a run of one PTE table (its lock held by the walk): each PTE that still maps
    /// its frame becomes the frame's swap entry (its dirty bit passed to the frame, a slot reference taken, the mapcount
    /// dropped), then one TLB flush for the run.
    /// </summary>
    private unsafe struct RunUnmapVisitor(Reclaimer owner, Mm mm, uint* frames, bool* cleared) : IPteVisitor // unsafe: the run's frames and result flags are pinned stack memory of the caller.
    {
        public int Unmapped { get; private set; }

        public bool VisitTable(Hva firstAddress, Span<ulong> entries, Pfn tablePfn)
        {
            var memory = owner._memory;
            var area = owner.Area!;
            for (var k = 0; k < entries.Length; k++)
            {
                var pfn = new Pfn(frames[k]);
                var current = new HostPte(entries[k]);
                if (!current.IsPresent || current.Pfn != pfn)
                {
                    continue;
                }

                var address = firstAddress + ((ulong)k * Paging.PageSize);
                Volatile.Write(ref entries[k], HostPte.None.Value);
                mm.TracePte(address, current, HostPte.None);
                if (current.IsDirty)
                {
                    memory.SetFlags(pfn, FrameFlags.Dirty);
                }

                var slot = memory.Frame(pfn).SwapSlot;
                area.Duplicate(slot);
                var swapEntry = HostPteEncoding.MakeSwap(slot);
                Volatile.Write(ref entries[k], swapEntry.Value);
                mm.TracePte(address, HostPte.None, swapEntry);
                memory.DecrementMapCount(pfn);
                cleared[k] = true;
                Unmapped++;
            }

            if (Unmapped > 0)
            {
                mm.FlushTlb(firstAddress, firstAddress + ((ulong)entries.Length * Paging.PageSize));
            }

            return false;
        }
    }
}
