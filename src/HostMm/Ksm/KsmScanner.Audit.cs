using Hypervisor.HostMm.Frames;

namespace Hypervisor.HostMm.Ksm;

/// <summary>The KSM invariants for <see cref="HostMmAuditor"/>.</summary>
public sealed partial class KsmScanner
{
    /// <summary>
    /// Adds one line per broken KSM invariant to <paramref name="violations"/>. Always (whenever the host is quiescent):
    /// KSM PTEs are read-only; each process's and the host's ksm_zero_pages equal the dirty zero-page PTEs; every
    /// counter agrees with the items and nodes; every stable item is on its node's sharer list; every live stable
    /// node's page is a KSM frame, and the mappings its sharers lead to (rmap_walk_ksm) are real mappings of it (no
    /// more than its mapcount). When <paramref name="settled"/> (after a full scan with nothing else running): every
    /// mapping of a KSM page is found through its node (mapcount equal), every KSM frame has a live node, every
    /// stable item's address maps its node's page and every unstable item's address maps a page.
    /// </summary>
    internal void Audit(List<string> violations, bool settled)
    {
        lock (_scanLock)
        {
            lock (_lock)
            {
                if (!_everUsed && Volatile.Read(ref _ksmZeroPages) == 0)
                {
                    return; // KSM never ran on this host: nothing to check (and no page-table walk to pay for)
                }

                AuditPtes(violations);
                AuditCounters(violations);
                AuditNodes(violations, settled);
                if (settled)
                {
                    AuditSettledItems(violations);
                }
            }
        }
    }

    private void AuditPtes(List<string> violations)
    {
        long zero = 0;
        foreach (var mm in _host.Mms)
        {
            var walker = new KsmPteAuditor(mm, violations);
            mm.PageTable.Walk(Hva.Zero, Mm.UserSpaceEnd, allocate: false, ref walker);
            zero += walker.ZeroPages;
            if (walker.ZeroPages != mm.KsmZeroPages)
            {
                violations.Add($"{mm}: ksm_zero_pages says {mm.KsmZeroPages} but {walker.ZeroPages} PTEs map a KSM-placed zero page");
            }
        }

        if (zero != Volatile.Read(ref _ksmZeroPages))
        {
            violations.Add($"ksm_zero_pages says {Volatile.Read(ref _ksmZeroPages)} but live processes have {zero}");
        }
    }

    private void AuditCounters(List<string> violations)
    {
        var free = new HashSet<int>();
        for (var item = _freeItem; item != RmapItem.None; item = _items[item].Next)
        {
            free.Add(item);
        }

        long items = 0, unstable = 0;
        var perSlot = new Dictionary<int, (long Items, long Merging)>();
        for (var item = 0; item < _itemHighWater; item++)
        {
            if (free.Contains(item))
            {
                continue;
            }

            ref var it = ref _items[item];
            items++;
            var counts = perSlot.GetValueOrDefault(it.Slot);
            counts.Items++;
            if (it.State == RmapItemState.Unstable)
            {
                unstable++;
            }
            else if (it.State == RmapItemState.Stable)
            {
                counts.Merging++;
                if (it.Node < 0 || it.Node >= _nodeHighWater || !OnSharerList(it.Node, item))
                {
                    violations.Add($"KSM rmap item {item} ({_slotTable[it.Slot].Mm} at {new Hva(it.Address)}) is stable but not on node {it.Node}'s sharer list");
                }
            }

            perSlot[it.Slot] = counts;
        }

        if (items != _rmapItems)
        {
            violations.Add($"KSM rmap_items says {_rmapItems} but {items} items exist");
        }

        if (unstable != _pagesUnshared)
        {
            violations.Add($"KSM pages_unshared says {_pagesUnshared} but {unstable} items are unstable");
        }

        foreach (var (item, _) in _unstable.Select(e => (e.Value, e.Key)))
        {
            if (_items[item].State != RmapItemState.Unstable)
            {
                violations.Add($"KSM rmap item {item} is in the unstable tree but marked {_items[item].State}");
            }
        }

        foreach (var slot in _slotTable.Values)
        {
            var counts = perSlot.GetValueOrDefault(slot.Id);
            if (counts.Items != slot.Items || counts.Merging != slot.Merging)
            {
                violations.Add($"KSM slot of {slot.Mm}: counters say {slot.Items} items / {slot.Merging} merging but {counts.Items} / {counts.Merging} exist");
            }
        }

        long shared = 0, sharing = 0, chains = 0, dups = 0;
        for (var node = 0; node < _nodeHighWater; node++)
        {
            switch (_nodes[node].Kind)
            {
                case StableNodeKind.Chain:
                    chains++;
                    continue;
                case StableNodeKind.Dup:
                    dups++;
                    break;
                case StableNodeKind.Free:
                    continue;
            }

            var length = 0;
            for (var item = _nodes[node].Head; item != RmapItem.None; item = _items[item].SharerNext)
            {
                length++;
            }

            if (length != _nodes[node].Sharers)
            {
                violations.Add($"KSM stable node {node} counts {_nodes[node].Sharers} sharers but lists {length}");
            }

            if (length > 0)
            {
                shared++;
                sharing += length - 1;
            }
        }

        if ((shared, sharing, chains, dups) != (_pagesShared, _pagesSharing, _chains, _dups))
        {
            violations.Add($"KSM counters say shared {_pagesShared}, sharing {_pagesSharing}, chains {_chains}, dups {_dups} but the nodes give {shared}, {sharing}, {chains}, {dups}");
        }
    }

    private void AuditNodes(List<string> violations, bool settled)
    {
        var live = new HashSet<ulong>();
        for (var node = 0; node < _nodeHighWater; node++)
        {
            if (_nodes[node].Kind is not (StableNodeKind.Plain or StableNodeKind.Dup or StableNodeKind.Orphan))
            {
                continue;
            }

            var kpfn = _nodes[node].Kpfn;
            ref var frame = ref _memory.Frame(kpfn);
            if (frame.RefCount == 0 || !frame.Has(FrameFlags.Ksm) || frame.RmapIndex != (ulong)node)
            {
                continue; // stale: pruned at its next lookup
            }

            live.Add(kpfn.Value);
            var found = CountSharerMappings(node, kpfn);
            if (found > frame.MapCount || (settled && found != frame.MapCount))
            {
                violations.Add($"KSM page {kpfn} of stable node {node} has mapcount {frame.MapCount} but its sharers lead to {found} mappings");
            }
        }

        if (!settled)
        {
            return;
        }

        for (ulong index = 0; index < (ulong)_memory.TotalFrames; index++)
        {
            ref var frame = ref _memory.Frame(new Pfn(index));
            if (frame.RefCount > 0 && frame.Has(FrameFlags.Ksm) && frame.MapCount > 0 && !live.Contains(index))
            {
                violations.Add($"KSM page {new Pfn(index)} is mapped {frame.MapCount} times but has no live stable node");
            }
        }
    }

    /// <summary>The distinct PTEs that map <paramref name="kpfn"/> among the addresses its sharers' families lead to.</summary>
    private int CountSharerMappings(int node, Pfn kpfn)
    {
        var seen = new HashSet<(int, ulong)>();
        var visited = new HashSet<(int, ulong)>();
        var found = 0;
        for (var item = _nodes[node].Head; item != RmapItem.None; item = _items[item].SharerNext)
        {
            if (!visited.Add((_items[item].Family, _items[item].Index)))
            {
                continue;
            }

            foreach (var mm in _host.Reclaim.Rmap.MembersOf(_items[item].Family))
            {
                if (!mm.HasExited && mm.TryFindAnonMapping(_items[item].Family, _items[item].Index, out var address)
                    && mm.PageTable.Read(address) is { IsPresent: true } pte && pte.Pfn == kpfn && seen.Add((mm.Id, address.Value)))
                {
                    found++;
                }
            }
        }

        return found;
    }

    private bool OnSharerList(int node, int item)
    {
        for (var sharer = _nodes[node].Head; sharer != RmapItem.None; sharer = _items[sharer].SharerNext)
        {
            if (sharer == item)
            {
                return true;
            }
        }

        return false;
    }

    private void AuditSettledItems(List<string> violations)
    {
        foreach (var slot in _scanList)
        {
            if (slot.Mm.HasExited)
            {
                continue;
            }

            for (var item = slot.First; item != RmapItem.None; item = _items[item].Next)
            {
                ref var it = ref _items[item];
                var pte = slot.Mm.PageTable.Read(new Hva(it.Address));
                if (it.State == RmapItemState.Stable && (!pte.IsPresent || pte.Pfn != _nodes[it.Node].Kpfn))
                {
                    violations.Add($"KSM stable item {item}: {slot.Mm} at {new Hva(it.Address)} maps {pte}, not its node's page {_nodes[it.Node].Kpfn}");
                }
                else if (it.State == RmapItemState.Unstable && !pte.IsPresent)
                {
                    violations.Add($"KSM unstable item {item}: {slot.Mm} at {new Hva(it.Address)} maps no page ({pte})");
                }
            }
        }
    }
}
