using Hypervisor.HostMm.Frames;
using Hypervisor.HostMm.Vmas;

namespace Hypervisor.HostMm.Ksm;

/// <summary>The scan: walking a process's mergeable pages, its rmap items, and <c>cmp_and_merge_page</c>.</summary>
public sealed partial class KsmScanner
{
    /// <summary>
    /// Visits pages of <paramref name="slot"/>'s process from its cursor, up to <paramref name="budget"/>; the caller
    /// holds the process's mmap lock for read. <paramref name="finished"/> when the pass over the process is done.
    /// </summary>
    private int ScanMm(MmSlot slot, int budget, out bool finished)
    {
        var mm = slot.Mm;
        var scanned = 0;
        var address = slot.ScanAddress;
        foreach (var vma in mm.VmasLocked)
        {
            if (vma.End <= address || (vma.Flags & VmaFlags.Mergeable) == 0)
            {
                continue;
            }

            for (var page = vma.Start > address ? vma.Start : address; page < vma.End; page += Paging.PageSize)
            {
                if (scanned >= budget)
                {
                    slot.ScanAddress = page;
                    finished = false;
                    return scanned;
                }

                if (!mm.TryGetAnonPage(page, out var pfn))
                {
                    continue;
                }

                try
                {
                    var item = GetNextItem(slot, page);
                    slot.Previous = item;
                    if (ShouldSkip(ref _items[item], pfn))
                    {
                        Interlocked.Increment(ref _pagesSkipped);
                        continue;
                    }

                    CmpAndMerge(slot, vma, item, pfn);
                    Interlocked.Increment(ref _pagesScanned);
                    scanned++;
                }
                finally
                {
                    _memory.Put(pfn);
                }
            }

            address = vma.End;
        }

        finished = true;
        return scanned;
    }

    /// <summary>
    /// Smart scan (<c>should_skip_rmap_item</c>): a page never merged after 3 visits is skipped for 1, 2, 4 or 8 of the
    /// following visits as its age grows; KSM pages are never skipped.
    /// </summary>
    private bool ShouldSkip(ref RmapItem item, Pfn pfn)
    {
        if (!_smartScan || _memory.Frame(pfn).Has(FrameFlags.Ksm) || item.State == RmapItemState.Stable)
        {
            return false;
        }

        var age = item.Age;
        if (age != byte.MaxValue)
        {
            item.Age++;
        }

        if (age < 3)
        {
            return false;
        }

        if (item.RemainingSkips > 0)
        {
            item.RemainingSkips--;
            return true;
        }

        item.RemainingSkips = age switch
        {
            <= 3 => 1,
            <= 5 => 2,
            <= 8 => 4,
            _ => 8,
        };
        return false;
    }

    /// <summary>
    /// The item for <paramref name="address"/> after the cursor (<c>get_next_rmap_item</c>): items before it are stale
    /// (their page went) and are removed; a missing one is created with no checksum yet.
    /// </summary>
    private int GetNextItem(MmSlot slot, Hva address)
    {
        var previous = slot.Previous;
        var current = previous == RmapItem.None ? slot.First : _items[previous].Next;
        while (current != RmapItem.None && _items[current].Address < address.Value)
        {
            var next = _items[current].Next;
            RemoveItem(slot, previous, current);
            current = next;
        }

        if (current != RmapItem.None && _items[current].Address == address.Value)
        {
            return current;
        }

        var item = AllocateItem();
        _items[item] = new RmapItem
        {
            Address = address.Value,
            Slot = slot.Id,
            Next = current,
            Node = NoNode,
            SharerNext = RmapItem.None,
            SharerPrev = RmapItem.None,
        };
        if (previous == RmapItem.None)
        {
            slot.First = item;
        }
        else
        {
            _items[previous].Next = item;
        }

        lock (_lock)
        {
            slot.Items++;
            _rmapItems++;
        }

        return item;
    }

    /// <summary>Removes every item of <paramref name="slot"/> after <paramref name="previous"/> (all of them for none).</summary>
    private void RemoveItemsAfter(MmSlot slot, int previous)
    {
        var current = previous == RmapItem.None ? slot.First : _items[previous].Next;
        while (current != RmapItem.None)
        {
            var next = _items[current].Next;
            RemoveItem(slot, previous, current);
            current = next;
        }
    }

    /// <summary>Unlinks <paramref name="item"/> (after <paramref name="previous"/>) from its process and its tree, and frees it.</summary>
    private void RemoveItem(MmSlot slot, int previous, int item)
    {
        RemoveFromTree(item);
        var next = _items[item].Next;
        if (previous == RmapItem.None)
        {
            slot.First = next;
        }
        else
        {
            _items[previous].Next = next;
        }

        if (slot.Previous == item)
        {
            slot.Previous = previous;
        }

        lock (_lock)
        {
            slot.Items--;
            _rmapItems--;
            _items[item] = default;
            _items[item].Next = _freeItem;
            _freeItem = item;
        }
    }

    private int AllocateItem()
    {
        lock (_lock)
        {
            if (_freeItem != RmapItem.None)
            {
                var item = _freeItem;
                _freeItem = _items[item].Next;
                return item;
            }

            if (_itemHighWater == _items.Length)
            {
                Array.Resize(ref _items, _items.Length * 2);
            }

            return _itemHighWater++;
        }
    }

    /// <summary>Files a KSM page that has no live stable node under a new one, with <paramref name="item"/> as its sharer (under the page lock, only tried).</summary>
    private void Adopt(int item, Pfn pfn, Vma vma, Hva address)
    {
        if (_memory.TestAndSetFlag(pfn, FrameFlags.Locked))
        {
            return;
        }

        try
        {
            var node = AllocateNode();
            _memory.Frame(pfn).SetKsmRmap((ulong)node);
            StableInsert(node, pfn, Hash(pfn));
            Append(item, node, vma.AnonId, vma.PageIndexOf(address));
        }
        finally
        {
            _memory.ClearFlags(pfn, FrameFlags.Locked);
        }
    }

    /// <summary>
    /// Linux's <c>cmp_and_merge_page</c> for the page <paramref name="pfn"/> (referenced by the caller) that
    /// <paramref name="item"/> tracks, in <paramref name="vma"/> of <paramref name="slot"/>'s process (mmap lock held).
    /// </summary>
    private void CmpAndMerge(MmSlot slot, Vma vma, int item, Pfn pfn)
    {
        var mm = slot.Mm;
        var address = new Hva(_items[item].Address);
        ref var frame = ref _memory.Frame(pfn);
        if (frame.Has(FrameFlags.Ksm))
        {
            var node = (int)frame.RmapIndex;
            if (_items[item].State == RmapItemState.Stable && _items[item].Node == node)
            {
                return;
            }

            // A KSM page this item is not listed on: a forked child's mapping (Linux: "ksm page forked"). It joins the
            // page's sharers, past max_page_sharing if need be, since the page is shared already. A KSM page whose node
            // is gone (run = 2 dropped every node while it sat in the swap cache) is filed afresh.
            RemoveFromTree(item);
            if (node >= 0 && node < _nodeHighWater && IsLiveKsmPage(node, pfn))
            {
                Append(item, node, vma.AnonId, vma.PageIndexOf(address));
            }
            else
            {
                Adopt(item, pfn, vma, address);
            }

            return;
        }

        RemoveFromTree(item);
        var hash = Hash(pfn);
        ref var it = ref _items[item];
        if (!it.HasChecksum || it.Checksum != hash)
        {
            it.Checksum = hash;
            it.HasChecksum = true;
            return;
        }

        if (_useZeroPages && hash == _zeroHash)
        {
            if (TryMergeOnePage(mm, vma, address, pfn, _host.ZeroPfn, NoNode))
            {
                it.Age = 0;
            }

            return;
        }

        var stable = StableSearch(pfn, hash, out var kpfn);
        if (stable != NoNode)
        {
            try
            {
                if (TryMergeOnePage(mm, vma, address, pfn, kpfn, NoNode))
                {
                    Append(item, stable, vma.AnonId, vma.PageIndexOf(address));
                    _items[item].Age = 0;
                }
            }
            finally
            {
                _memory.Put(kpfn);
            }

            return;
        }

        var treeItem = UnstableSearchInsert(item, pfn, hash, out var treePfn);
        if (treeItem == RmapItem.None)
        {
            return;
        }

        try
        {
            var node = AllocateNode();
            if (TryMergeTwoPages(mm, vma, item, pfn, treeItem, treePfn, node, out var treeFamily, out var treeIndex))
            {
                RemoveFromTree(treeItem);
                StableInsert(node, pfn, hash);
                Append(treeItem, node, treeFamily, treeIndex);
                Append(item, node, vma.AnonId, vma.PageIndexOf(address));
                _items[item].Age = 0;
                _items[treeItem].Age = 0;
            }
            else
            {
                FreeNode(node);
            }
        }
        finally
        {
            _memory.Put(treePfn);
        }
    }
}
