using Hypervisor.HostMm.Frames;
using Hypervisor.HostMm.Migration;
using Hypervisor.HostMm.PageTables;

namespace Hypervisor.HostMm;

/// <summary>Migration of a whole transparent huge page to another node.</summary>
public sealed partial class Mm
{
    /// <summary>The frame state a huge page's migration carries to each new frame (<c>folio_migrate_flags</c>).</summary>
    private const FrameFlags HugeCarriedFlags = FrameFlags.Dirty | FrameFlags.Accessed | FrameFlags.LruRefsMask | FrameFlags.Active | FrameFlags.SwapBacked
        | FrameFlags.Workingset | FrameFlags.PmdMapped | FrameFlags.PmdYoung;

    /// <summary>
    /// Migrates the huge page mapped by the huge leaf at <paramref name="hugeAddress"/> to <paramref name="node"/> as one
    /// 2 MiB block (Linux migrates a huge folio whole). It must be this process's alone (each frame mapped once, with no
    /// other reference: a shared huge page is split and migrated 4 KiB at a time by the caller). Under the mmap lock for
    /// write, which stands in for the PMD migration entry (no fault or get-user-pages of this process can run, and the
    /// reverse-map walkers skip it): every frame locked → start (Clear, the 2 MiB) → leaf cleared and flushed → end → the
    /// 2 MiB copied with each frame's state, reverse-map index and cgroup charge → new leaf installed with no notifier →
    /// old frames freed. Returns <see cref="MigrationFailure.None"/> also when the page is already there.
    /// </summary>
    internal MigrationFailure MigrateHugeLeaf(Hva hugeAddress, int node, out bool migrated)
    {
        migrated = false;
        var memory = Host.Memory;
        if (!_mmapLock.TryEnterWriteLock(0))
        {
            return MigrationFailure.Busy; // a fault or another operation holds it: a later pass tries again
        }

        try
        {
            if (_exited)
            {
                return MigrationFailure.NotMapped;
            }

            var leaf = _pageTable.ReadPmd(hugeAddress);
            if (!HostPageTable.IsHugeLeaf(leaf.Value) || Host.IsHugeZeroPage(leaf.Pfn))
            {
                return MigrationFailure.NotPresent;
            }

            var old = leaf.Pfn;
            if (memory.NodeOf(old) == node)
            {
                return MigrationFailure.None;
            }

            var locked = 0;
            var failure = MigrationFailure.None;
            for (; locked < HugeFrames; locked++)
            {
                ref var frame = ref memory.Frame(old + (ulong)locked);
                if (frame.TestAndSetFlag(FrameFlags.Locked))
                {
                    failure = MigrationFailure.Busy;
                    break;
                }

                if (frame.MapCount != 1 || frame.RefCount != 1 || frame.Has(FrameFlags.Isolated) || frame.Has(FrameFlags.SwapCache))
                {
                    frame.ClearFlags(FrameFlags.Locked);
                    failure = frame.MapCount != 1 ? MigrationFailure.Shared : MigrationFailure.Referenced;
                    break;
                }
            }

            var target = default(Pfn);
            if (failure == MigrationFailure.None && !memory.TryAllocateBlock(node, AllocationFlags.ExactNode, out target))
            {
                failure = MigrationFailure.TargetNodeFull;
            }

            if (failure != MigrationFailure.None)
            {
                for (var i = 0; i < locked; i++)
                {
                    memory.ClearFlags(old + (ulong)i, FrameFlags.Locked);
                }

                return failure;
            }

            var end = hugeAddress + HugeSize;
            using (Invalidation.Begin(this, hugeAddress, end, NotifierEvent.Clear))
            {
                var cleared = _pageTable.ClearHuge(hugeAddress);
                TracePte(hugeAddress, cleared, HostPte.None);
                FlushTlb(hugeAddress, end);
                leaf = cleared; // the accessed and dirty bits as they were at the clear
            }

            for (var i = 0UL; i < HugeFrames; i++)
            {
                ref var from = ref memory.Frame(old + i);
                ref var to = ref memory.Frame(target + i);
                memory.FrameBytes(old + i).CopyTo(memory.FrameBytes(target + i));
                to.SetFlags(from.Flags & HugeCarriedFlags);
                to.SetAnonRmap(from.RmapOwner, from.RmapIndex);
                to.SetMemoryCgroup(from.MemoryCgroupId);

                // Off its list while its lruvec is still its cgroup's: with the cgroup cleared, the release below would
                // unlink it and fix the counts of the root's lruvec instead (the stress demo's auditor caught that).
                Host.Reclaim.LruRemove(old + i);
                from.SetMemoryCgroup(0); // the charge moved with the page
                memory.IncrementMapCount(target + i);
                var active = to.Has(FrameFlags.Active);
                to.ClearFlags(FrameFlags.Active);
                Host.Reclaim.LruAdd(target + i, active);
            }

            var moved = HostPte.Present(target, leaf.Value & ~(HostPte.PfnMask | HostPte.PresentBit));
            if (!_pageTable.TryInstallHuge(hugeAddress, moved))
            {
                throw new InvalidOperationException($"{this}: the PD entry at {hugeAddress} was filled under the mmap lock held for write");
            }

            TracePte(hugeAddress, HostPte.None, moved);
            for (var i = 0UL; i < HugeFrames; i++)
            {
                ref var from = ref memory.Frame(old + i);
                from.ClearRmap();
                from.ClearFlags(HugeCarriedFlags);
                memory.DecrementMapCount(old + i);
                from.ClearFlags(FrameFlags.Locked);
                memory.Put(old + i);
            }

            migrated = true;
            return MigrationFailure.None;
        }
        finally
        {
            _mmapLock.ExitWriteLock();
        }
    }

    /// <summary>The huge leaves of <c>[start, end)</c> (2 MiB-aligned addresses and leaves), read under the mmap lock for read.</summary>
    internal List<(Hva Address, HostPte Leaf, Vmas.Vma Vma)> HugeLeavesIn(Hva start, Hva end)
    {
        var leaves = new List<(Hva, HostPte, Vmas.Vma)>();
        EnterRead("huge leaves");
        try
        {
            _pageTable.ForEachHuge(start, end, (address, leaf) =>
            {
                if (_vmas.Find(address) is { } vma)
                {
                    leaves.Add((address, leaf, vma));
                }
            });
        }
        finally
        {
            _mmapLock.ExitReadLock();
        }

        return leaves;
    }

    /// <summary>Splits the huge leaf at <paramref name="hugeAddress"/> under the mmap lock for read (a shared huge page migrates 4 KiB at a time).</summary>
    internal void SplitHugeForMigration(Hva hugeAddress)
    {
        EnterRead("huge page split");
        try
        {
            SplitHugePmd(hugeAddress);
        }
        finally
        {
            _mmapLock.ExitReadLock();
        }
    }
}
