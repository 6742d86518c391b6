using System.Diagnostics;
using Hypervisor.HostMm.Frames;
using Hypervisor.HostMm.Vmas;

namespace Hypervisor.HostMm.Ksm;

/// <summary>Merging (<c>try_to_merge_one_page</c>: <c>write_protect_page</c> then <c>replace_page</c>) and unmerging.</summary>
public sealed partial class KsmScanner
{
    /// <summary>
    /// <c>try_to_merge_two_pages</c>: <paramref name="pfn"/> (of <paramref name="item"/>, in <paramref name="mm"/>) is
    /// write-protected and becomes the KSM page of <paramref name="node"/>, then the tree item's mapping is replaced by it.
    /// If the second half fails the first is undone: the page gets its anonymous reverse map back under the page lock
    /// (it stays read-only and clean; a write reuses it in place when it is exclusive). Linux breaks it copy-on-write
    /// instead (<c>break_cow</c>); undoing costs no copy, and leaves no KSM page without a stable node when a forked
    /// process maps the same page. When the page lock is busy, the break is done as Linux does.
    /// </summary>
    private bool TryMergeTwoPages(Mm mm, Vma vma, int item, Pfn pfn, int treeItem, Pfn treePfn, int node, out long treeFamily, out ulong treeIndex)
    {
        treeFamily = 0;
        treeIndex = 0;
        var address = new Hva(_items[item].Address);
        var family = _memory.Frame(pfn).RmapOwner;
        var index = _memory.Frame(pfn).RmapIndex;
        if (!TryMergeOnePage(mm, vma, address, pfn, null, node))
        {
            return false;
        }

        var treeMm = _slotTable[_items[treeItem].Slot].Mm;
        var merged = false;
        if (treeMm.TryEnterRmapRead(out var taken))
        {
            try
            {
                var treeAddress = new Hva(_items[treeItem].Address);
                var treeVma = treeMm.VmasLocked.Find(treeAddress);
                if (treeVma is not null && (treeVma.Flags & VmaFlags.Mergeable) != 0)
                {
                    treeFamily = treeVma.AnonId;
                    treeIndex = treeVma.PageIndexOf(treeAddress);
                    merged = TryMergeOnePage(treeMm, treeVma, treeAddress, treePfn, pfn, NoNode);
                }
            }
            finally
            {
                if (taken)
                {
                    treeMm.ExitRmapRead();
                }
            }
        }

        if (!merged)
        {
            if (_memory.TestAndSetFlag(pfn, FrameFlags.Locked))
            {
                mm.BreakKsmLocked(address);
            }
            else
            {
                ref var frame = ref _memory.Frame(pfn);
                if (frame.Has(FrameFlags.Ksm) && frame.RmapIndex == (ulong)node)
                {
                    frame.ClearRmap();
                    frame.SetAnonRmap(family, index);
                }

                _memory.ClearFlags(pfn, FrameFlags.Locked);
            }
        }

        return merged;
    }

    /// <summary>
    /// <c>try_to_merge_one_page</c> under the page lock (only tried: a busy page is left for the next pass):
    /// <see cref="WriteProtectPage"/>; then with no <paramref name="kpfn"/> the page itself becomes the KSM page of
    /// <paramref name="node"/> (marked dirty, so reclaim swaps rather than drops it); else the final compare of the two
    /// write-protected pages and <see cref="ReplacePage"/>. A page whose content differs is never merged.
    /// </summary>
    private bool TryMergeOnePage(Mm mm, Vma vma, Hva address, Pfn pfn, Pfn? kpfn, int node)
    {
        if (kpfn == pfn)
        {
            return true;
        }

        if (_memory.TestAndSetFlag(pfn, FrameFlags.Locked))
        {
            return false;
        }

        try
        {
            if (!WriteProtectPage(mm, address, pfn, out var original))
            {
                return false;
            }

            if (kpfn is not { } kpage)
            {
                _memory.Frame(pfn).SetKsmRmap((ulong)node);
                _memory.SetFlags(pfn, FrameFlags.Dirty);
                return true;
            }

            return _memory.FrameEquals(pfn, kpage) && ReplacePage(mm, vma, address, pfn, kpage, original);
        }
        finally
        {
            _memory.ClearFlags(pfn, FrameFlags.Locked);
        }
    }

    /// <summary>
    /// <c>write_protect_page</c> (§3): start (Clear, one page) → under the page-table lock, if the PTE is writable or
    /// dirty: cleared and flushed, then the GUP-pin check (references must be exactly the mappings + the caller's + the
    /// swap cache's; a pin restores the PTE and aborts), the dirty bit moves to the page and a clean read-only PTE is
    /// set → unlock → end. A PTE that is already clean and read-only is left as it is, but the pin check still applies
    /// (a reference taken for a write before the PTE lost W could still be writing). <paramref name="original"/> is
    /// the PTE that <see cref="ReplacePage"/> must find.
    /// </summary>
    private bool WriteProtectPage(Mm mm, Hva address, Pfn pfn, out HostPte original)
    {
        original = default;
        var end = address + Paging.PageSize;
        using var invalidation = Invalidation.Begin(mm, address, end, NotifierEvent.Clear);
        if (!mm.PageTable.TryLock(address, allocate: false, out var slot))
        {
            return false;
        }

        using (slot)
        {
            var pte = slot.Value;
            if (!pte.IsPresent || pte.Pfn != pfn)
            {
                return false;
            }

            ref var frame = ref _memory.Frame(pfn);
            if (!pte.IsWritable && !pte.IsDirty)
            {
                if (frame.MapCount + 1 + (frame.Has(FrameFlags.SwapCache) ? 1 : 0) != frame.RefCount)
                {
                    return false;
                }

                original = pte;
                return true;
            }

            slot.Value = HostPte.None;
            mm.TracePte(address, pte, HostPte.None);
            mm.FlushTlb(address, end);
            if (frame.MapCount + 1 + (frame.Has(FrameFlags.SwapCache) ? 1 : 0) != frame.RefCount)
            {
                slot.Value = pte; // pinned (get_user_pages): the PTE comes back as it was and the merge is off
                mm.TracePte(address, HostPte.None, pte);
                return false;
            }

            if (pte.IsDirty)
            {
                _memory.SetFlags(pfn, FrameFlags.Dirty);
            }

            var readOnly = pte.Without(HostPte.WritableBit | HostPte.DirtyBit);
            slot.Value = readOnly;
            mm.TracePte(address, HostPte.None, readOnly);
            original = readOnly;
            return true;
        }
    }

    /// <summary>
    /// <c>replace_page</c> (§3): start (Clear, one page) → under the page-table lock, if the PTE is still
    /// <paramref name="original"/>: the KSM page gains a reference and a mapping → the PTE is cleared and flushed →
    /// (legacy: change_pte) → the read-only PTE of the KSM page is set (for the zero page: dirty, marking it KSM-placed)
    /// → the old page loses its mapping and that mapping's reference (the caller still holds one) → unlock → end. The old
    /// page is freed when the caller drops its reference, after the end.
    /// </summary>
    private bool ReplacePage(Mm mm, Vma vma, Hva address, Pfn pfn, Pfn kpfn, HostPte original)
    {
        var trace = _host.Trace;
        var started = trace is null ? 0 : Stopwatch.GetTimestamp();
        var end = address + Paging.PageSize;
        var toZero = kpfn == _host.ZeroPfn;
        using (Invalidation.Begin(mm, address, end, NotifierEvent.Clear))
        {
            if (!mm.PageTable.TryLock(address, allocate: false, out var slot))
            {
                return false;
            }

            using (slot)
            {
                if (slot.Value != original)
                {
                    return false;
                }

                HostPte replacement;
                if (toZero)
                {
                    replacement = HostPte.Present(kpfn, Mm.PteFlags(vma.Protection, writable: false) | HostPte.DirtyBit);
                }
                else
                {
                    _memory.Get(kpfn);
                    _memory.IncrementMapCount(kpfn);
                    replacement = HostPte.Present(kpfn, Mm.PteFlags(vma.Protection, writable: false) | HostPte.AccessedBit);
                }

                slot.Value = HostPte.None;
                mm.TracePte(address, original, HostPte.None);
                mm.FlushTlb(address, end);
                if (_host.Options.LegacyChangePte)
                {
                    mm.Notifiers.ChangePte(address, replacement);
                }

                slot.Value = replacement;
                mm.TracePte(address, HostPte.None, replacement);
                _memory.DecrementMapCount(pfn);
                _memory.Put(pfn); // the old mapping's reference; the caller's keeps the page until after the end
            }
        }

        if (toZero)
        {
            mm.AddRss(-1);
            mm.AddKsmZeroPages(1);
        }

        Interlocked.Increment(ref _merges);
        trace?.KsmMerged(mm, address, pfn, kpfn, started);
        return true;
    }

    /// <summary>
    /// run = 2 (<c>unmerge_and_remove_all_rmap_items</c>): every KSM page and KSM-placed zero page of every listed
    /// process is broken copy-on-write, every rmap item and stable node goes; processes stay listed. Under the scan lock.
    /// </summary>
    private void UnmergeAll()
    {
        MmSlot[] slots;
        lock (_lock)
        {
            slots = [.. _scanList];
        }

        foreach (var slot in slots)
        {
            if (slot.Mm.KsmEnterRead())
            {
                try
                {
                    slot.Mm.UnmergeAllLocked();
                }
                finally
                {
                    slot.Mm.KsmExitRead();
                }

                RemoveItemsAfter(slot, RmapItem.None);
                slot.Previous = RmapItem.None;
                slot.ScanAddress = Hva.Zero;
            }
            else
            {
                DropSlot(slot);
            }
        }

        lock (_lock)
        {
            for (var node = 0; node < _nodeHighWater; node++)
            {
                if (_nodes[node].Kind != StableNodeKind.Free)
                {
                    FreeNodeLocked(node);
                }
            }

            _stable.Clear();
            _unstable.Clear();
            _pagesUnshared = 0;
            _chains = 0;
            _dups = 0;
            _cursor = 0;
        }
    }
}
