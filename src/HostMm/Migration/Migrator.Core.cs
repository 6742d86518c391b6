using Hypervisor.HostMm.Frames;
using Hypervisor.HostMm.Reclaim;

namespace Hypervisor.HostMm.Migration;

/// <summary>One frame's migration: unmap to migration entries, freeze, copy, restore, free.</summary>
public sealed partial class Migrator
{
    /// <summary>The frame state a migration carries to the new frame (<c>folio_migrate_flags</c>; the KSM bit moves with the stable node).</summary>
    private const FrameFlags CarriedFlags = FrameFlags.Dirty | FrameFlags.Accessed | FrameFlags.LruRefsMask | FrameFlags.Active | FrameFlags.SwapBacked
        | FrameFlags.Workingset | FrameFlags.Uptodate | FrameFlags.SwapCache;

    /// <summary>
    /// Test seam: called on the migrating thread once every mapping of the frame is a migration entry (no mmap lock or
    /// page-table lock held, the old frame locked), before its references are frozen. Tests run mprotect, fork, munmap or
    /// a faulting thread here to meet the entries.
    /// </summary>
    internal Action<Pfn>? AfterUnmap { get; set; }

    /// <summary>
    /// Test seam: called on the migrating thread once every frame of a huge page migrating whole is locked, isolated from
    /// its LRU and frozen (the mmap lock held for write), before its leaf is cleared; given the first frame.
    /// </summary>
    internal Action<Pfn>? AfterHugeIsolate { get; set; }

    /// <summary>
    /// Migrates one isolated frame (the caller's isolation reference) to <paramref name="node"/>. On success the old frame
    /// is freed and the isolation consumed; on failure the frame is still isolated, mapped as before, and the caller puts
    /// it back (or retries a <see cref="MigrationFailure.Busy"/>/<see cref="MigrationFailure.Referenced"/>).
    /// </summary>
    private MigrationFailure MigrateOne(Pfn old, int node)
    {
        ref var frame = ref _memory.Frame(old);
        if (frame.TestAndSetFlag(FrameFlags.Locked))
        {
            return MigrationFailure.Busy; // folio_trylock failed: someone is swapping, merging or migrating it
        }

        var unlockOld = true;
        try
        {
            if (frame.Has(FrameFlags.Writeback))
            {
                return MigrationFailure.Busy;
            }

            if (!_memory.TryAllocate(node, AllocationFlags.ExactNode, out var target))
            {
                return MigrationFailure.TargetNodeFull;
            }

            // Nobody can see the new frame before the restore maps it, but faults that find it there must wait for the copy
            // to be complete: it is locked like the old one until the end.
            _memory.SetFlags(target, FrameFlags.Locked);
            var keys = _host.Reclaim.RmapKeysOf(old);
            var unmap = new UnmapVisitor(this, old);
            var complete = true;
            foreach (var (family, index) in keys)
            {
                if (frame.MapCount == 0)
                {
                    break;
                }

                complete &= _host.Reclaim.WalkFamilyTrying(old, family, index, ref unmap);
            }

            var swapCache = frame.Has(FrameFlags.SwapCache);
            if (!complete || frame.MapCount != 0)
            {
                Abandon(old, target, keys);
                return MigrationFailure.Busy;
            }

            AfterUnmap?.Invoke(old);

            // folio_migrate_mapping: exactly the isolation's reference and the swap cache's are left, or someone else (a
            // get-user-pages caller) is using the page and the attempt is -EAGAIN.
            if (!_memory.TryFreeze(old, 1 + (swapCache ? 1 : 0)))
            {
                Abandon(old, target, keys);
                return MigrationFailure.Referenced;
            }

            CopyState(old, target, swapCache);
            RemoveMigrationPtes(old, target, keys);

            // The new frame goes on the target node's LRU and is unlocked, so waiters retry into it; the old frame, now
            // mapped nowhere and referenced by nobody, is freed last (§3's migration row).
            var reclaim = _host.Reclaim;
            var active = _memory.Frame(target).Has(FrameFlags.Active);
            _memory.ClearFlags(target, FrameFlags.Active);
            reclaim.LruAdd(target, active);
            _memory.ClearFlags(target, FrameFlags.Locked);
            _memory.Put(target); // the allocation's reference, which stood for the isolation; the mappings and cache hold theirs
            frame.ClearFlags(FrameFlags.Locked | FrameFlags.Isolated);
            unlockOld = false;
            reclaim.ForgetIsolated();
            _memory.FreeFrozen(old);
            return MigrationFailure.None;
        }
        finally
        {
            if (unlockOld)
            {
                frame.ClearFlags(FrameFlags.Locked);
            }
        }
    }

    /// <summary>
    /// An attempt that cannot finish: the entries already installed go back to the old frame (<c>remove_migration_ptes</c>
    /// with the old frame as the new one, as Linux does on -EAGAIN), and the target frame is freed.
    /// </summary>
    private void Abandon(Pfn old, Pfn target, List<(int Family, ulong Index)> keys)
    {
        RemoveMigrationPtes(old, old, keys);
        _memory.ClearFlags(target, FrameFlags.Locked);
        _memory.Put(target);
    }

    /// <summary>
    /// <c>folio_migrate_mapping</c> + <c>folio_migrate_flags</c> + <c>folio_copy</c> + <c>mem_cgroup_migrate</c>, the old
    /// frame frozen: the data, the flags, the reverse-map identity, the cgroup charge and the swap-cache entry move to the
    /// target; the old frame is left with none of them, ready to be freed.
    /// </summary>
    private void CopyState(Pfn old, Pfn target, bool swapCache)
    {
        ref var from = ref _memory.Frame(old);
        ref var to = ref _memory.Frame(target);
        _memory.FrameBytes(old).CopyTo(_memory.FrameBytes(target)); // not CopyFrame: the frozen source has refcount 0 by design
        to.SetFlags(from.Flags & CarriedFlags);
        if (from.Has(FrameFlags.Ksm))
        {
            // ksm_migrate_folio: the stable node names the new frame from now on (its content is already there); a
            // scanner lookup meanwhile found the old frame frozen and left the node for later.
            to.SetKsmRmap(from.RmapIndex);
            _host.Ksm.MigrateKsmPage(old, target);
        }
        else
        {
            to.SetAnonRmap(from.RmapOwner, from.RmapIndex);
        }

        to.SetMemoryCgroup(from.MemoryCgroupId);
        from.SetMemoryCgroup(0); // the charge moved: freeing the old frame must not uncharge it
        if (swapCache)
        {
            var slot = from.SwapSlot;
            _memory.Get(target); // the swap cache's reference
            to.SwapSlot = slot;
            _host.Reclaim.MigrateSwapCache(slot, old, target);
            from.SwapSlot = FrameInfo.NoSwapSlot;
        }

        from.ClearRmap();
        from.ClearFlags(CarriedFlags);
    }

    /// <summary>
    /// <c>remove_migration_ptes</c>: every migration entry for <paramref name="from"/> becomes a mapping of
    /// <paramref name="to"/>, found under the reverse-map keys the unmap used (<paramref name="keys"/>), each process's
    /// mmap lock waited for (and any process that joined a family meanwhile, by fork, walked too).
    /// </summary>
    private void RemoveMigrationPtes(Pfn from, Pfn to, List<(int Family, ulong Index)> keys)
    {
        var restore = new RestoreVisitor(this, from, to);
        foreach (var (family, index) in keys)
        {
            _host.Reclaim.WalkFamilyWaiting(family, index, ref restore);
        }
    }

    /// <summary><c>try_to_migrate_one</c> per mapping.</summary>
    private struct UnmapVisitor(Migrator owner, Pfn pfn) : IRmapVisitor
    {
        public bool Visit(Mm mm, Hva address)
        {
            if (mm.TryToMigrateOne(address, pfn))
            {
                Interlocked.Increment(ref owner._entriesInstalled);
            }

            return owner._memory.Frame(pfn).MapCount > 0;
        }
    }

    /// <summary><c>remove_migration_pte</c> per mapping.</summary>
    private struct RestoreVisitor(Migrator owner, Pfn from, Pfn to) : IRmapVisitor
    {
        public bool Visit(Mm mm, Hva address)
        {
            if (mm.RemoveMigrationPte(address, from, to))
            {
                Interlocked.Increment(ref owner._entriesRemoved);
            }

            return true;
        }
    }
}
