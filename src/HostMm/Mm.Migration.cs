using Hypervisor.HostMm.Frames;
using Hypervisor.HostMm.PageTables;
using Hypervisor.HostMm.Vmas;

namespace Hypervisor.HostMm;

/// <summary>
/// The process side of page migration: a mapping replaced by a migration entry (<c>try_to_migrate_one</c>), a migration
/// entry replaced by the new frame (<c>remove_migration_pte</c>), the fault that waits on one
/// (<c>migration_entry_wait</c>), and the page lists <see cref="Migration.Migrator"/> collects.
/// </summary>
public sealed partial class Mm
{
    /// <summary>Times a fault may find the same migration entry with its frame unlocked (a migration just ending) before it calls the entry stale.</summary>
    private const int MaxUnlockedMigrationSightings = 10_000;

    private long _migrationEntryWaits;
    private long _gupMigrationEntryWaits;

    /// <summary>Faults that found a migration entry and waited for the migration to end (Linux's <c>migration_entry_wait</c>).</summary>
    public long MigrationEntryWaits => Volatile.Read(ref _migrationEntryWaits);

    /// <summary>Of <see cref="MigrationEntryWaits"/>, those inside get-user-pages (a secondary MMU's fault path).</summary>
    public long GupMigrationEntryWaits => Volatile.Read(ref _gupMigrationEntryWaits);

    /// <summary>
    /// <c>try_to_migrate_one</c> for the mapping of <paramref name="pfn"/> at <paramref name="address"/>, in §3's order:
    /// notifier start (Clear, one page) → under the page-table lock the PTE is cleared, the TLB flushed and a migration
    /// entry installed that keeps writable, young and dirty → the mapping's mapcount and reference dropped → notifier end.
    /// RSS is unchanged (the entry still counts, as in Linux). False when the PTE no longer maps the frame. The caller
    /// holds the frame's page lock and an isolation reference, and the mmap lock (read is enough).
    /// </summary>
    internal bool TryToMigrateOne(Hva address, Pfn pfn)
    {
        var memory = Host.Memory;
        if (HugePagesPossible && _pageTable.IsHugeMapped(address))
        {
            // A 4 KiB migration of a page a huge leaf maps here (a shared huge page, split in another process): split it
            // first, in its own start/end, as Linux's try_to_migrate does with TTU_SPLIT_HUGE_PMD.
            SplitHugePmd(new Hva(address.Value & ~(HugeSize - 1)));
        }

        if (!MapsFrame(_pageTable.Read(address), pfn))
        {
            return false;
        }

        var end = address + Paging.PageSize;
        using (Invalidation.Begin(this, address, end, NotifierEvent.Clear))
        {
            if (!_pageTable.TryLock(address, allocate: false, out var slot))
            {
                return false;
            }

            using (slot)
            {
                var current = slot.Value;
                if (!MapsFrame(current, pfn))
                {
                    return false;
                }

                slot.Value = HostPte.None;
                TracePte(address, current, HostPte.None);
                FlushTlb(address, end);
                if (current.IsDirty)
                {
                    memory.SetFlags(pfn, FrameFlags.Dirty);
                }

                // A PROT_NONE mapping keeps no writable bit: it comes back read-only and a write breaks it in place.
                var entry = HostPteEncoding.MakeMigration(pfn, current.IsPresent && current.IsWritable, current.IsAccessed, current.IsDirty);
                slot.Value = entry;
                TracePte(address, HostPte.None, entry);
                memory.DecrementMapCount(pfn);
            }
        }

        memory.Put(pfn); // the mapping's reference; the caller's isolation reference keeps the frame
        return true;
    }

    /// <summary>
    /// <c>remove_migration_pte</c>: replaces the migration entry for <paramref name="from"/> at <paramref name="address"/>
    /// by a mapping of <paramref name="to"/> (the new frame, or <paramref name="from"/> itself when the migration was
    /// abandoned) under the page-table lock, with no notifier (a mapping is only added; secondary MMUs refault). The
    /// protection is the VMA's now (an mprotect may have run meanwhile); writable only when the entry was; young and
    /// dirty as the entry kept them. False when the entry is gone (zapped or never there).
    /// </summary>
    internal bool RemoveMigrationPte(Hva address, Pfn from, Pfn to)
    {
        var memory = Host.Memory;
        var vma = _vmas.Find(address);
        if (vma is null || !_pageTable.TryLock(address, allocate: false, out var slot))
        {
            return false;
        }

        using (slot)
        {
            var current = slot.Value;
            if (HostPteEncoding.Classify(current) != HostPteKind.Migration || current.Pfn != from)
            {
                return false;
            }

            var writable = HostPteEncoding.IsMigrationWritable(current) && (vma.Protection & Protection.Write) != 0;
            var flags = PteFlags(vma.Protection == Protection.None ? Protection.Read : vma.Protection, writable)
                | (current.IsAccessed ? HostPte.AccessedBit : 0) | (current.IsDirty ? HostPte.DirtyBit : 0);
            var restored = HostPte.Present(to, flags);
            if (vma.Protection == Protection.None)
            {
                restored = HostPteEncoding.MakeProtNone(restored);
            }

            memory.Get(to);
            memory.IncrementMapCount(to);
            slot.Value = restored;
            TracePte(address, current, restored);
        }

        return true;
    }

    /// <summary>
    /// Takes the mmap lock for read for a walk that must not skip this process (<c>remove_migration_ptes</c>), waiting for
    /// it, unless this thread holds it already (<paramref name="taken"/> false then). False when the process has exited.
    /// </summary>
    internal bool EnterRmapReadWaiting(out bool taken)
    {
        taken = false;
        if (_mmapLock.IsReadLockHeld || _mmapLock.IsWriteLockHeld)
        {
            return !_exited;
        }

        if (_exited)
        {
            return false;
        }

        _mmapLock.EnterReadLock();
        if (_exited)
        {
            _mmapLock.ExitReadLock();
            return false;
        }

        taken = true;
        return true;
    }

    /// <summary>
    /// A fault found a migration entry (<c>migration_entry_wait</c>): drops the mmap lock, waits until the migrating
    /// frame's page lock is released (the migration holds it until every entry is replaced), and retakes the lock.
    /// Returns null to retry the fault from the VMA lookup, or the result when the address space changed under the wait.
    /// </summary>
    /// <remarks>
    /// The mmap lock is dropped for the wait (Linux keeps it: its migration restores entries under the anon_vma lock,
    /// ours under each process's mmap lock for read, which a queued writer would block behind a reader that waits
    /// here). No reference is taken on the frame: one would make the migration's reference freeze fail.
    /// </remarks>
    private void WaitOnMigrationEntry(Hva page, HostPte entry, bool forGup, ref int unlockedSightings)
    {
        Interlocked.Increment(ref _migrationEntryWaits);
        if (forGup)
        {
            Interlocked.Increment(ref _gupMigrationEntryWaits);
        }

        ref var frame = ref Host.Memory.Frame(HostPteEncoding.MigrationPfn(entry));
        if (frame.Has(FrameFlags.Locked))
        {
            unlockedSightings = 0;
        }
        else if (++unlockedSightings > MaxUnlockedMigrationSightings)
        {
            // Every migration holds its frame locked until it has replaced every entry: one that keeps turning up with
            // the frame unlocked was left behind, and waiting would spin for ever.
            throw new InvalidOperationException(
                $"{this}: fault at {page} keeps finding {HostPteEncoding.Describe(entry)} while no migration holds {HostPteEncoding.MigrationPfn(entry)}: a migration entry was left behind");
        }

        _mmapLock.ExitReadLock();
        try
        {
            var spin = default(SpinWait);
            while (frame.Has(FrameFlags.Locked))
            {
                spin.SpinOnce(sleep1Threshold: 20);
            }
        }
        finally
        {
            _mmapLock.EnterReadLock();
        }
    }

    /// <summary>
    /// The frames of <c>[start, end)</c> that <paramref name="targetOf"/> gives a target node (-1 for none) (present or
    /// PROT_NONE mappings of frames other than the zero page), each isolated from its LRU with one reference; the pages already isolated by someone
    /// else, or not on an LRU, are counted in <paramref name="busy"/>. Takes the mmap lock for read.
    /// </summary>
    internal List<(Hva Address, Pfn Pfn, int Node)> IsolateForMigration(Hva start, Hva end, Func<Vma, Hva, Pfn, int> targetOf, out int busy)
    {
        var candidates = new List<(Hva, Pfn)>();
        var isolated = new List<(Hva, Pfn, int)>();
        busy = 0;
        EnterRead("page migration");
        try
        {
            var collector = new MappedFrameCollector(this, candidates);
            _pageTable.Walk(start, end, allocate: false, ref collector);
            foreach (var (address, pfn) in candidates)
            {
                var vma = _vmas.Find(address);
                var target = vma is null ? -1 : targetOf(vma, address, pfn);
                if (target < 0)
                {
                    continue;
                }

                if (!Host.Reclaim.TryIsolate(pfn))
                {
                    busy++;
                    continue;
                }

                // The frame may have been unmapped and reused between the walk and the isolation: keep it only if this
                // address still maps it.
                if (!MapsFrame(_pageTable.Read(address), pfn))
                {
                    Host.Reclaim.PutBackIsolated(pfn);
                    continue;
                }

                isolated.Add((address, pfn, target));
            }
        }
        finally
        {
            _mmapLock.ExitReadLock();
        }

        return isolated;
    }

    /// <summary>
    /// Reads the entry at <paramref name="address"/> for <c>move_pages</c>: the frame it maps (present or PROT_NONE),
    /// whether a VMA covers the address at all, and the VMA. Takes the mmap lock for read.
    /// </summary>
    internal HostPte ReadForMigration(Hva address, out Vma? vma)
    {
        EnterRead("move_pages");
        try
        {
            vma = _vmas.Find(address);
            return vma is null ? HostPte.None : _pageTable.Read(address);
        }
        finally
        {
            _mmapLock.ExitReadLock();
        }
    }

    /// <summary>True when <paramref name="pte"/> maps <paramref name="pfn"/> (present, or PROT_NONE).</summary>
    private static bool MapsFrame(HostPte pte, Pfn pfn)
    {
        if (pte.IsPresent)
        {
            return pte.Pfn == pfn;
        }

        return !pte.IsNone && HostPteEncoding.Classify(pte) == HostPteKind.ProtNone && pte.Pfn == pfn;
    }

    /// <summary>Collects (address, frame) for every present or PROT_NONE entry that maps a frame other than the zero page.</summary>
    private readonly struct MappedFrameCollector(Mm mm, List<(Hva, Pfn)> found) : IPteVisitor
    {
        public bool VisitTable(Hva firstAddress, Span<ulong> entries, Pfn tablePfn)
        {
            var zero = mm.Host.ZeroPfn;
            for (var i = 0; i < entries.Length; i++)
            {
                var pte = new HostPte(entries[i]);
                if (pte.IsNone || (!pte.IsPresent && HostPteEncoding.Classify(pte) != HostPteKind.ProtNone) || pte.Pfn == zero)
                {
                    continue;
                }

                found.Add((firstAddress + ((ulong)i << Paging.PageShift), pte.Pfn));
            }

            return true;
        }
    }
}
