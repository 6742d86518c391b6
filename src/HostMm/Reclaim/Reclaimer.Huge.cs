using Hypervisor.HostMm.Frames;
using Hypervisor.HostMm.Migration;

namespace Hypervisor.HostMm.Reclaim;

/// <summary>Allocation of transparent huge pages.</summary>
public sealed partial class Reclaimer
{
    /// <summary>
    /// Allocates a zeroed 2 MiB block (512 frames) for a huge-page fault of <paramref name="mm"/> on the node its VMA's
    /// <paramref name="policy"/> picks, charged to its cgroup. Never reclaims: when the charge would pass the limit or
    /// no node allowed has a whole free block, it fails and the fault falls back to 4 KiB pages (Linux's THP fault with
    /// defrag off: <c>thp_fault_fallback</c>). The frames are on no list; the caller maps them and adds them to the LRU.
    /// </summary>
    internal bool TryAllocateHugeAnon(Mm mm, NumaPolicy policy, ulong pageIndex, out Pfn first)
    {
        const int frames = PageTables.HostPageTable.HugePageFrames;
        var cgroup = mm.Cgroup;
        if (!cgroup.TryCharge(frames))
        {
            first = default;
            return false;
        }

        var node = policy.NodeFor(HostThread.NodeFor(mm), pageIndex); // local: the faulting thread's node, as TryAllocateAnon
        if (node >= _memory.NodeCount)
        {
            node = mm.PreferredNode;
        }

        var allocated = policy.MayFallBack
            ? _memory.TryAllocateBlock(node, AllocationFlags.Zero, out first)
            : TryAllocateBoundBlock(policy, node, out first);
        if (!allocated)
        {
            cgroup.Uncharge(frames);
            return false;
        }

        for (var i = 0UL; i < frames; i++)
        {
            _memory.Frame(first + i).SetMemoryCgroup(cgroup.Id);
        }

        return true;
    }

    private bool TryAllocateBoundBlock(NumaPolicy policy, int node, out Pfn first)
    {
        if (_memory.TryAllocateBlock(node, AllocationFlags.Zero | AllocationFlags.ExactNode, out first))
        {
            return true;
        }

        for (var other = 0; other < _memory.NodeCount; other++)
        {
            if (other != node && (policy.Nodes & (1UL << other)) != 0
                && _memory.TryAllocateBlock(other, AllocationFlags.Zero | AllocationFlags.ExactNode, out first))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>
    /// <c>folio_referenced_one</c> for a mapping of <paramref name="pfn"/> by a huge leaf at <paramref name="address"/>
    /// (the caller holds the process's mmap lock for read): the huge page ages as one. Its first frame test-and-clears
    /// the leaf's accessed bit and asks the secondary MMUs about the whole 2 MiB (clear_flush_young or clear_young, as
    /// for a PTE), and when it was young hands that to the 511 others (<see cref="FrameFlags.PmdYoung"/>); every other
    /// frame is young when the leaf's bit is set again, when it was handed the bit, or when a secondary MMU's
    /// test_young says so. False when no huge leaf maps the frame there.
    /// </summary>
    private bool HugeReferenced(Mm mm, Hva address, Pfn pfn)
    {
        const ulong hugeSize = PageTables.HostPageTable.HugePageSize;
        var hugeAddress = new Hva(address.Value & ~(hugeSize - 1));
        var pmd = mm.PageTable.ReadPmd(hugeAddress);
        if (!PageTables.HostPageTable.IsHugeLeaf(pmd.Value) || PageTables.HostPageTable.SubpageOf(pmd, address).Pfn != pfn)
        {
            return false;
        }

        Interlocked.Increment(ref _youngQueries);
        bool young;
        if (pfn == pmd.Pfn)
        {
            young = pmd.IsAccessed && mm.PageTable.TryUpdateHuge(hugeAddress, pmd, pmd.Without(HostPte.AccessedBit));
            var end = hugeAddress + hugeSize;
            var secondary = _options.Policy == LruPolicy.Classic ? mm.Notifiers.ClearFlushYoung(hugeAddress, end) : mm.Notifiers.ClearYoung(hugeAddress, end);
            if (secondary)
            {
                Interlocked.Increment(ref _youngHits);
                young |= _options.SecondaryAging;
            }

            if (young)
            {
                for (var i = 1UL; i < PageTables.HostPageTable.HugePageFrames; i++)
                {
                    _memory.SetFlags(pmd.Pfn + i, FrameFlags.PmdYoung);
                }
            }

            return young;
        }

        young = pmd.IsAccessed || _memory.TestAndClearFlag(pfn, FrameFlags.PmdYoung);
        if (!young && mm.Notifiers.TestYoung(address))
        {
            Interlocked.Increment(ref _youngHits);
            young = _options.SecondaryAging;
        }

        return young;
    }

    /// <summary>Splits every huge leaf that maps <paramref name="pfn"/> (a locked frame reclaim decided to unmap), walking its mappings.</summary>
    private void SplitHugeMappings(Pfn pfn)
    {
        var visitor = new SplitVisitor();
        WalkRmap(pfn, ref visitor);
    }

    /// <summary>Splits the huge leaf at a mapping, if one maps it there (under the process's mmap lock for read).</summary>
    private struct SplitVisitor : IRmapVisitor
    {
        public readonly bool Visit(Mm mm, Hva address)
        {
            const ulong hugeSize = PageTables.HostPageTable.HugePageSize;
            if (mm.PageTable.IsHugeMapped(address))
            {
                mm.SplitHugePmd(new Hva(address.Value & ~(hugeSize - 1)));
            }

            return true;
        }
    }

    /// <summary>
    /// Readies a freshly allocated huge block for its huge leaf, before the leaf is visible: each frame swap-backed and
    /// hinted <see cref="FrameFlags.PmdMapped"/>, given its reverse-map index (<paramref name="firstIndex"/> + i in anon
    /// family <paramref name="family"/>) and a mapcount of 1, and all 512 put on their (one) LRU under one hold of its
    /// lock, as faulted pages. The frames are the caller's alone (refcount 1 each, reachable by no one), so the counts
    /// are written directly.
    /// </summary>
    internal void PrepareHugeFrames(Pfn first, int family, ulong firstIndex)
    {
        const int frames = PageTables.HostPageTable.HugePageFrames;
        var table = _memory.FrameTable;
        for (var i = 0; i < frames; i++)
        {
            ref var frame = ref table[(int)first.Value + i];
            frame.SetFlags(FrameFlags.SwapBacked | FrameFlags.PmdMapped);
            frame.SetAnonRmap(family, firstIndex + (ulong)i);
            Volatile.Write(ref frame.MapCountLocation, 1);
        }

        var lruvec = LruvecOf(ref table[(int)first.Value]);
        lock (lruvec.Lock)
        {
            for (var i = 0; i < frames; i++)
            {
                var index = (uint)first.Value + (uint)i;
                if (MultiGen)
                {
                    lruvec.AddToGenerationLocked(table, index, lruvec.MaxSeq);
                }
                else
                {
                    lruvec.AddLocked(table, index, LruList.Inactive);
                }
            }
        }
    }
}
