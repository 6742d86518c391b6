using Hypervisor.HostMm.Frames;
using Hypervisor.HostMm.Vmas;

namespace Hypervisor.HostMm.Ksm;

/// <summary>The stable and unstable trees (hash-indexed, every hit confirmed by a full page compare) and the sharer lists.</summary>
public sealed partial class KsmScanner
{
    /// <summary>
    /// <c>stable_tree_search</c>: a KSM page with the content of <paramref name="pfn"/> that can take one more sharer, or
    /// <see cref="NoNode"/>. On a hit the KSM page is referenced (<paramref name="kpfn"/>; the caller drops it). Stale
    /// nodes (their KSM page freed) met on the way are pruned; of a chain's dups the fullest one with room is chosen.
    /// </summary>
    private int StableSearch(Pfn pfn, ulong hash, out Pfn kpfn)
    {
        kpfn = default;
        if (!_stable.TryGetValue(hash, out var node))
        {
            return NoNode;
        }

        if (_nodes[node].Kind != StableNodeKind.Chain)
        {
            if (!TryGetKsmPage(node, out var page))
            {
                if (!IsFrozenKsmPage(node))
                {
                    RemoveNode(node);
                }

                return NoNode;
            }

            if (_nodes[node].Sharers >= _maxPageSharing || page == pfn || !_memory.FrameEquals(pfn, page))
            {
                _memory.Put(page);
                return NoNode;
            }

            kpfn = page;
            return node;
        }

        var best = NoNode;
        var bestPage = default(Pfn);
        List<int>? stale = null;
        for (var dup = _nodes[node].Chain; dup != NoNode; dup = _nodes[dup].Next)
        {
            if (!TryGetKsmPage(dup, out var page))
            {
                if (!IsFrozenKsmPage(dup))
                {
                    (stale ??= []).Add(dup);
                }

                continue;
            }

            if (_nodes[dup].Sharers < _maxPageSharing && page != pfn && (best == NoNode || _nodes[dup].Sharers > _nodes[best].Sharers))
            {
                if (best != NoNode)
                {
                    _memory.Put(bestPage);
                }

                best = dup;
                bestPage = page;
            }
            else
            {
                _memory.Put(page);
            }
        }

        foreach (var dup in stale ?? [])
        {
            RemoveNode(dup);
        }

        if (best == NoNode)
        {
            return NoNode;
        }

        if (!_memory.FrameEquals(pfn, bestPage))
        {
            _memory.Put(bestPage);
            return NoNode;
        }

        kpfn = bestPage;
        return best;
    }

    /// <summary>
    /// <c>stable_tree_insert</c>: files the new KSM page of <paramref name="node"/> under <paramref name="hash"/>. When the
    /// tree already holds that content (a KSM page at max_page_sharing), the two become dups of one chain.
    /// </summary>
    private void StableInsert(int node, Pfn kpfn, ulong hash)
    {
        lock (_lock)
        {
            _nodes[node].Kpfn = kpfn;
            _nodes[node].Hash = hash;
            _nodes[node].Chain = NoNode;
            _nodes[node].Next = NoNode;
            if (!_stable.TryGetValue(hash, out var existing))
            {
                _nodes[node].Kind = StableNodeKind.Plain;
                _stable[hash] = node;
                return;
            }

            var sample = _nodes[existing].Kind == StableNodeKind.Chain ? _nodes[existing].Chain : existing;
            if (sample != NoNode && !_memory.FrameEquals(_nodes[sample].Kpfn, kpfn))
            {
                _nodes[node].Kind = StableNodeKind.Orphan; // a 64-bit hash collision: reachable only through its frame
                return;
            }

            var chain = existing;
            if (_nodes[existing].Kind != StableNodeKind.Chain)
            {
                chain = AllocateNodeLocked();
                _nodes[chain] = new StableNode { Kind = StableNodeKind.Chain, Hash = hash, Chain = NoNode, Next = NoNode, Head = RmapItem.None };
                AddDupLocked(chain, existing);
                _stable[hash] = chain;
                _chains++;
            }

            AddDupLocked(chain, node);
        }
    }

    private void AddDupLocked(int chain, int dup)
    {
        _nodes[dup].Kind = StableNodeKind.Dup;
        _nodes[dup].Chain = chain;
        _nodes[dup].Next = _nodes[chain].Chain;
        _nodes[chain].Chain = dup;
        _nodes[chain].Sharers++;
        _dups++;
    }

    /// <summary>
    /// <c>unstable_tree_search_insert</c>: an item of the current pass whose page has the content of
    /// <paramref name="pfn"/> (its page referenced in <paramref name="treePfn"/>), or none, in which case
    /// <paramref name="item"/> is filed in the unstable tree (replacing an entry whose page changed since).
    /// </summary>
    private int UnstableSearchInsert(int item, Pfn pfn, ulong hash, out Pfn treePfn)
    {
        treePfn = default;
        if (_unstable.TryGetValue(hash, out var tree) && tree != item)
        {
            if (TryGetTreeItemPage(tree, out var page))
            {
                if (page == pfn)
                {
                    _memory.Put(page);
                    return RmapItem.None; // both items map one page (fork): nothing to merge, nothing to file
                }

                if (_memory.FrameEquals(pfn, page))
                {
                    treePfn = page;
                    return tree;
                }

                _memory.Put(page);
            }

            lock (_lock)
            {
                _items[tree].State = RmapItemState.None;
                _unstable.Remove(hash);
                _pagesUnshared--;
            }
        }

        lock (_lock)
        {
            _unstable[hash] = item;
            _items[item].State = RmapItemState.Unstable;
            _pagesUnshared++;
            _items[item].Checksum = hash;
        }

        return RmapItem.None;
    }

    /// <summary>The page a tree item's address maps now, referenced, if its process can be locked without waiting and the address is still mergeable.</summary>
    private bool TryGetTreeItemPage(int item, out Pfn pfn)
    {
        pfn = default;
        var mm = _slotTable[_items[item].Slot].Mm;
        if (!mm.TryEnterRmapRead(out var taken))
        {
            return false;
        }

        try
        {
            var address = new Hva(_items[item].Address);
            var vma = mm.VmasLocked.Find(address);
            if (vma is null || (vma.Flags & VmaFlags.Mergeable) == 0 || !mm.TryGetAnonPage(address, out pfn))
            {
                return false;
            }

            if (_memory.Frame(pfn).Has(FrameFlags.Ksm))
            {
                _memory.Put(pfn); // merged meanwhile by another path: no longer an unstable candidate
                pfn = default;
                return false;
            }

            return true;
        }
        finally
        {
            if (taken)
            {
                mm.ExitRmapRead();
            }
        }
    }

    /// <summary>Takes <paramref name="item"/> out of whichever tree holds it (<c>remove_rmap_item_from_tree</c>).</summary>
    private void RemoveFromTree(int item)
    {
        ref var it = ref _items[item];
        if (it.State == RmapItemState.None)
        {
            return;
        }

        lock (_lock)
        {
            if (it.State == RmapItemState.Unstable)
            {
                if (_unstable.TryGetValue(it.Checksum, out var filed) && filed == item)
                {
                    _unstable.Remove(it.Checksum);
                }

                _pagesUnshared--;
            }
            else
            {
                UnlinkSharerLocked(item);
            }

            it.State = RmapItemState.None;
        }
    }

    /// <summary><c>stable_tree_append</c>: <paramref name="item"/> becomes a sharer of <paramref name="node"/>'s KSM page.</summary>
    private void Append(int item, int node, long family, ulong index)
    {
        lock (_lock)
        {
            ref var it = ref _items[item];
            ref var n = ref _nodes[node];
            it.State = RmapItemState.Stable;
            it.Node = node;
            it.Family = checked((int)family);
            it.Index = index;
            it.SharerPrev = RmapItem.None;
            it.SharerNext = n.Head;
            if (n.Head != RmapItem.None)
            {
                _items[n.Head].SharerPrev = item;
            }

            n.Head = item;
            if (n.Sharers++ == 0)
            {
                _pagesShared++;
            }
            else
            {
                _pagesSharing++;
            }

            _slotTable[it.Slot].Merging++;
        }
    }

    private void UnlinkSharerLocked(int item)
    {
        ref var it = ref _items[item];
        ref var n = ref _nodes[it.Node];
        if (it.SharerPrev != RmapItem.None)
        {
            _items[it.SharerPrev].SharerNext = it.SharerNext;
        }
        else
        {
            n.Head = it.SharerNext;
        }

        if (it.SharerNext != RmapItem.None)
        {
            _items[it.SharerNext].SharerPrev = it.SharerPrev;
        }

        if (--n.Sharers == 0)
        {
            _pagesShared--;
        }
        else
        {
            _pagesSharing--;
        }

        _slotTable[it.Slot].Merging--;
        it.Node = NoNode;
        it.SharerNext = RmapItem.None;
        it.SharerPrev = RmapItem.None;
    }

    /// <summary>
    /// <c>get_ksm_page</c>: references <paramref name="node"/>'s KSM page if it is still that node's page (not freed,
    /// not reused). False for a stale node.
    /// </summary>
    private bool TryGetKsmPage(int node, out Pfn kpfn)
    {
        kpfn = _nodes[node].Kpfn;
        if (!_memory.TryGet(kpfn))
        {
            return false;
        }

        ref var frame = ref _memory.Frame(kpfn);
        if (frame.Has(FrameFlags.Ksm) && frame.RmapIndex == (ulong)node)
        {
            return true;
        }

        _memory.Put(kpfn);
        return false;
    }

    /// <summary>
    /// True when <paramref name="node"/>'s KSM page has no reference to take right now but is still that node's page: its
    /// count is frozen by reclaim deciding whether to free it (<c>folio_ref_freeze</c>). Not stale yet: Linux's
    /// <c>get_ksm_page</c> waits for such a page; the scanner leaves the node for a later lookup.
    /// </summary>
    private bool IsFrozenKsmPage(int node)
    {
        ref var frame = ref _memory.Frame(_nodes[node].Kpfn);
        return !frame.IsFree && frame.RefCount == 0 && frame.Has(FrameFlags.Ksm) && frame.RmapIndex == (ulong)node;
    }

    /// <summary>True when <paramref name="pfn"/> is the live KSM page of a node in the tree.</summary>
    private bool IsLiveKsmPage(int node, Pfn pfn) =>
        _nodes[node].Kind is StableNodeKind.Plain or StableNodeKind.Dup or StableNodeKind.Orphan
        && _nodes[node].Kpfn == pfn && _memory.Frame(pfn).RmapIndex == (ulong)node;

    /// <summary>
    /// <c>remove_node_from_stable_tree</c> for a stale node: its items leave the stable tree (to be compared afresh), and
    /// the node leaves its chain (a chain left empty goes too) or the tree.
    /// </summary>
    private void RemoveNode(int node)
    {
        lock (_lock)
        {
            while (_nodes[node].Head != RmapItem.None)
            {
                var item = _nodes[node].Head;
                UnlinkSharerLocked(item);
                _items[item].State = RmapItemState.None;
            }

            ref var n = ref _nodes[node];
            switch (n.Kind)
            {
                case StableNodeKind.Plain:
                    if (_stable.TryGetValue(n.Hash, out var filed) && filed == node)
                    {
                        _stable.Remove(n.Hash);
                    }

                    break;
                case StableNodeKind.Dup:
                    var chain = n.Chain;
                    var link = _nodes[chain].Chain;
                    if (link == node)
                    {
                        _nodes[chain].Chain = n.Next;
                    }
                    else
                    {
                        while (_nodes[link].Next != node)
                        {
                            link = _nodes[link].Next;
                        }

                        _nodes[link].Next = n.Next;
                    }

                    _dups--;
                    if (--_nodes[chain].Sharers == 0)
                    {
                        _stable.Remove(_nodes[chain].Hash);
                        _chains--;
                        FreeNodeLocked(chain);
                    }

                    break;
            }

            FreeNodeLocked(node);
        }
    }

    private int AllocateNode()
    {
        lock (_lock)
        {
            var node = AllocateNodeLocked();
            _nodes[node] = new StableNode { Kind = StableNodeKind.Pending, Head = RmapItem.None, Chain = NoNode, Next = NoNode };
            return node;
        }
    }

    private int AllocateNodeLocked()
    {
        if (_freeNode != NoNode)
        {
            var node = _freeNode;
            _freeNode = _nodes[node].Next;
            return node;
        }

        if (_nodeHighWater == _nodes.Length)
        {
            Array.Resize(ref _nodes, _nodes.Length * 2);
        }

        return _nodeHighWater++;
    }

    private void FreeNode(int node)
    {
        lock (_lock)
        {
            FreeNodeLocked(node);
        }
    }

    private void FreeNodeLocked(int node)
    {
        _nodes[node] = new StableNode { Kind = StableNodeKind.Free, Head = RmapItem.None, Chain = NoNode, Next = _freeNode };
        _freeNode = node;
    }
}
