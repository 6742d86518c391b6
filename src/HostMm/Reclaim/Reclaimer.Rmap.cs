using Hypervisor.HostMm.Frames;
using Hypervisor.HostMm.PageTables;

namespace Hypervisor.HostMm.Reclaim;

/// <summary>The reverse-map walks: aging (<c>folio_referenced_one</c>) and unmapping (<c>try_to_unmap_one</c>).</summary>
public sealed partial class Reclaimer
{
    /// <summary>The "no swap slot" value for <see cref="TryToUnmap"/>: the mappings are discarded rather than swapped.</summary>
    private const uint SwapSlotNone = FrameInfo.NoSwapSlot;

    /// <summary>
    /// Linux's <c>folio_referenced</c> for an anonymous frame: for every mapping, test-and-clears the PTE's accessed bit
    /// and asks the process's secondary MMUs whether the page was young (<c>clear_flush_young</c> under the classic
    /// policy, <c>clear_young</c> under the multi-gen one) — both under the page-table lock, in that order. Returns the
    /// mappings found young; <paramref name="complete"/> is false when a process could not be walked (lock busy).
    /// </summary>
    /// <param name="pfn">The frame, locked and isolated by the caller.</param>
    /// <param name="complete">False when a process could not be walked.</param>
    /// <param name="lookAround">Under the multi-gen policy, the lruvec whose young neighbours a young mapping's
    /// look-around promotes (<see cref="LookAround"/>); null for none.</param>
    internal int FolioReferenced(Pfn pfn, out bool complete, Lruvec? lookAround = null)
    {
        var visitor = new ReferencedVisitor(this, pfn, lookAround);
        complete = WalkRmap(pfn, ref visitor);
        return visitor.References;
    }

    /// <summary>
    /// Linux's <c>try_to_unmap</c> (<c>try_to_unmap_one</c> per mapping) for a locked, isolated frame, in §3's order per
    /// mapping: notifier start (Clear, one page) → under the page-table lock the PTE is cleared, the TLB flushed and
    /// the swap entry for <paramref name="slot"/> installed (or nothing, for a discarded lazily freed page) → the
    /// mapping's reference and mapcount dropped → notifier end. The page is written and freed by the caller, after.
    /// </summary>
    private UnmapOutcome TryToUnmap(Pfn pfn, uint slot)
    {
        var visitor = new UnmapVisitor(this, pfn, slot);
        WalkRmap(pfn, ref visitor);
        return visitor.Redirtied ? UnmapOutcome.Redirtied : UnmapOutcome.Done;
    }

    /// <summary>
    /// Calls <paramref name="visitor"/> for each mapping of <paramref name="pfn"/>'s anon family and index, in each
    /// member process whose mmap lock could be taken for read without waiting (or is already held by this thread).
    /// Returns false when a member was skipped because its lock was busy or it was exiting mid-walk.
    /// </summary>
    private bool WalkRmap<TVisitor>(Pfn pfn, ref TVisitor visitor)
        where TVisitor : struct, IRmapVisitor
    {
        ref var frame = ref _memory.Frame(pfn);
        if (frame.Has(FrameFlags.Ksm))
        {
            return WalkRmapKsm(pfn, ref visitor);
        }

        var family = frame.RmapOwner;
        var index = frame.RmapIndex;
        if (family == FrameInfo.NoOwner)
        {
            return true;
        }

        return WalkFamily(pfn, family, index, ref visitor, out _);
    }

    /// <summary>
    /// Linux's <c>rmap_walk_ksm</c>: a KSM page's mappings are those of its stable node's sharers, each an (anon family,
    /// page index) whose every member process is walked as for an anonymous page (so a forked child's mapping, which
    /// shares its parent's family, is found too). The sharers are a snapshot taken under the scanner's leaf lock.
    /// </summary>
    private bool WalkRmapKsm<TVisitor>(Pfn pfn, ref TVisitor visitor)
        where TVisitor : struct, IRmapVisitor
    {
        var complete = true;
        foreach (var (family, index) in _host.Ksm.SharersOf(pfn))
        {
            complete &= WalkFamily(pfn, family, index, ref visitor, out var stop);
            if (stop || _memory.Frame(pfn).MapCount == 0)
            {
                break;
            }
        }

        return complete;
    }

    /// <summary>One anon family's mappings of page index <paramref name="index"/>; <paramref name="stop"/> when the visitor asked to stop.</summary>
    private bool WalkFamily<TVisitor>(Pfn pfn, int family, ulong index, ref TVisitor visitor, out bool stop)
        where TVisitor : struct, IRmapVisitor
    {
        stop = false;
        ref var frame = ref _memory.Frame(pfn);
        var complete = true;
        foreach (var mm in Rmap.MembersOf(family))
        {
            if (!mm.TryEnterRmapRead(out var taken))
            {
                complete = false;
                Interlocked.Increment(ref _rmapBusy);
                continue;
            }

            try
            {
                if (mm.TryFindAnonMapping(family, index, out var address) && !visitor.Visit(mm, address))
                {
                    stop = true;
                    return complete;
                }
            }
            finally
            {
                if (taken)
                {
                    mm.ExitRmapRead();
                }
            }

            if (frame.MapCount == 0)
            {
                break;
            }
        }

        return complete;
    }

    /// <summary><c>folio_referenced_one</c>: the primary accessed bit, then the secondary MMUs, under the PTL.</summary>
    private struct ReferencedVisitor(Reclaimer owner, Pfn pfn, Lruvec? lookAround) : IRmapVisitor
    {
        public int References { get; private set; }

        public bool Visit(Mm mm, Hva address)
        {
            var young = Check(mm, address);
            if (young && lookAround is not null)
            {
                owner.LookAround(mm, address, lookAround); // after the PTE lock is dropped: the walk takes the table's lock
            }

            return true;
        }

        private bool Check(Mm mm, Hva address)
        {
            if (!mm.PageTable.TryLock(address, allocate: false, out var slot))
            {
                // No PTE table: nothing mapped here, or a huge leaf (a transparent huge page), aged as one.
                var hugeYoung = owner._memory.Frame(pfn).Has(FrameFlags.PmdMapped) && owner.HugeReferenced(mm, address, pfn);
                if (hugeYoung)
                {
                    References++;
                }

                return hugeYoung;
            }

            using (slot)
            {
                var pte = slot.Value;
                if (!pte.IsPresent || pte.Pfn != pfn)
                {
                    return false;
                }

                var young = pte.IsAccessed;
                if (young)
                {
                    slot.Value = pte.Without(HostPte.AccessedBit);
                }

                Interlocked.Increment(ref owner._youngQueries);
                var end = address + Paging.PageSize;
                var secondary = owner._options.Policy == LruPolicy.Classic
                    ? mm.Notifiers.ClearFlushYoung(address, end)
                    : mm.Notifiers.ClearYoung(address, end);
                if (secondary)
                {
                    Interlocked.Increment(ref owner._youngHits);
                    young |= owner._options.SecondaryAging;
                }

                if (young)
                {
                    References++;
                }

                return young;
            }
        }
    }

    /// <summary><c>try_to_unmap_one</c> for one mapping; see <see cref="TryToUnmap"/>.</summary>
    private struct UnmapVisitor(Reclaimer owner, Pfn pfn, uint slot) : IRmapVisitor
    {
        public bool Redirtied { get; private set; }

        public bool Visit(Mm mm, Hva address)
        {
            var memory = owner._memory;
            var before = mm.PageTable.Read(address);
            if (!before.IsPresent || before.Pfn != pfn)
            {
                return true;
            }

            var discard = slot == SwapSlotNone;
            var end = address + Paging.PageSize;
            using var invalidation = Invalidation.Begin(mm, address, end, NotifierEvent.Clear);
            if (!mm.PageTable.TryLock(address, allocate: false, out var pte))
            {
                return true;
            }

            using (pte)
            {
                var current = pte.Value;
                if (!current.IsPresent || current.Pfn != pfn)
                {
                    return true;
                }

                if (discard && (current.IsDirty || memory.Frame(pfn).Has(FrameFlags.Dirty)))
                {
                    // Written since MADV_FREE: the data matters again (Linux restores the PTE and aborts).
                    Redirtied = true;
                    return false;
                }

                pte.Value = HostPte.None;
                mm.TracePte(address, current, HostPte.None);
                mm.FlushTlb(address, end);
                if (current.IsDirty)
                {
                    memory.SetFlags(pfn, FrameFlags.Dirty);
                }

                if (!discard)
                {
                    owner.Area!.Duplicate(slot);
                    var swapEntry = HostPteEncoding.MakeSwap(slot);
                    pte.Value = swapEntry;
                    mm.TracePte(address, HostPte.None, swapEntry);
                    mm.AddSwapEntries(1);
                }

                memory.DecrementMapCount(pfn);
                mm.AddRss(-1);
            }

            memory.Put(pfn); // the mapping's reference; the caller's isolation reference keeps the frame
            return memory.Frame(pfn).MapCount > 0;
        }
    }
}
