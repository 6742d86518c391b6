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
}
