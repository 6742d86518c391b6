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
    /// reverse-map walkers skip it). As <c>migrate_pages</c> does, every frame is first locked and isolated from its LRU
    /// (<see cref="Reclaim.Reclaimer.TryIsolate"/>, the isolation's reference taken off the list its cgroup names), then
    /// its references are frozen at the mapping's and the isolation's (<c>folio_ref_freeze</c>: a speculative reference,
    /// e.g. a device's cached translation, makes the attempt <see cref="MigrationFailure.Referenced"/>); then start
    /// (Clear, the 2 MiB) → leaf cleared and flushed → end → the 2 MiB copied with each frame's state, reverse-map index
    /// and cgroup charge → the new frames on their LRU → new leaf installed with no notifier → old frames freed (their
    /// isolation ends with them). A failed attempt puts every frame back on its list. Returns
    /// <see cref="MigrationFailure.None"/> also when the page is already there.
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

            var failure = IsolateHugeForMigration(old, out var isolated, out var frozen);
            var target = default(Pfn);
            if (failure == MigrationFailure.None && !memory.TryAllocateBlock(node, AllocationFlags.ExactNode, out target))
            {
                failure = MigrationFailure.TargetNodeFull;
            }

            if (failure != MigrationFailure.None)
            {
                PutBackHuge(old, isolated, frozen);
                return failure;
            }

            Host.Migration.AfterHugeIsolate?.Invoke(old);
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
                memory.FrameBytes(old + i).CopyTo(memory.FrameBytes(target + i)); // not CopyFrame: the frozen source has refcount 0
                to.SetFlags(from.Flags & HugeCarriedFlags);
                to.SetAnonRmap(from.RmapOwner, from.RmapIndex);
                to.SetMemoryCgroup(from.MemoryCgroupId);

                // The charge moves with the page. The old frame has been off every list since its isolation, so neither this
                // nor its release below touches an lruvec.
                from.SetMemoryCgroup(0);
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
                from.ClearFlags(HugeCarriedFlags | FrameFlags.Locked | FrameFlags.Isolated);
                memory.DecrementMapCount(old + i);
                Host.Reclaim.ForgetIsolated();
                memory.FreeFrozen(old + i);
            }

            migrated = true;
            return MigrationFailure.None;
        }
        finally
        {
            _mmapLock.ExitWriteLock();
        }
    }

    /// <summary>
    /// Locks, isolates and freezes the huge page's frames from <paramref name="old"/> on, in order, stopping at the first
    /// that cannot be: <paramref name="isolated"/> frames are then locked and isolated, the first <paramref name="frozen"/>
    /// of them frozen. The caller holds the mmap lock for write.
    /// </summary>
    private MigrationFailure IsolateHugeForMigration(Pfn old, out int isolated, out int frozen)
    {
        var memory = Host.Memory;
        frozen = 0;
        for (isolated = 0; isolated < HugeFrames; isolated++)
        {
            var pfn = old + (ulong)isolated;
            ref var frame = ref memory.Frame(pfn);
            if (frame.TestAndSetFlag(FrameFlags.Locked))
            {
                return MigrationFailure.Busy;
            }

            if (frame.MapCount != 1 || frame.Has(FrameFlags.SwapCache))
            {
                frame.ClearFlags(FrameFlags.Locked);
                return frame.MapCount != 1 ? MigrationFailure.Shared : MigrationFailure.Referenced;
            }

            // folio_isolate_lru: false when reclaim or another migration isolated it first, or it is on no list yet.
            if (!Host.Reclaim.TryIsolate(pfn))
            {
                frame.ClearFlags(FrameFlags.Locked);
                return MigrationFailure.Busy;
            }
        }

        // folio_ref_freeze at the mapping's and the isolation's references: anyone else's (a get-user-pages caller that
        // has not released yet, a speculative reference through a cached translation) makes the attempt -EAGAIN, and once
        // frozen no speculative reference can be taken.
        for (; frozen < HugeFrames; frozen++)
        {
            if (!memory.TryFreeze(old + (ulong)frozen, 2))
            {
                return MigrationFailure.Referenced;
            }
        }

        return MigrationFailure.None;
    }

    /// <summary>Undoes <see cref="IsolateHugeForMigration"/>: references given back, every frame back on its list and unlocked.</summary>
    private void PutBackHuge(Pfn old, int isolated, int frozen)
    {
        var memory = Host.Memory;
        for (var i = 0; i < isolated; i++)
        {
            var pfn = old + (ulong)i;
            if (i < frozen)
            {
                memory.Unfreeze(pfn, 2);
            }

            Host.Reclaim.PutBackIsolated(pfn);
            memory.ClearFlags(pfn, FrameFlags.Locked);
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
