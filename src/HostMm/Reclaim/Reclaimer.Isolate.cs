using Hypervisor.HostMm.Frames;

namespace Hypervisor.HostMm.Reclaim;

/// <summary>Isolation of one named frame from its LRU for page migration (Linux's <c>folio_isolate_lru</c> and <c>folio_putback_lru</c>).</summary>
public sealed partial class Reclaimer
{
    /// <summary>
    /// Takes <paramref name="pfn"/> off its LRU list with one reference and <see cref="FrameFlags.Isolated"/>
    /// (<c>folio_isolate_lru</c>). False when it is on no list (already isolated by reclaim or another migration, not yet
    /// added, or being freed).
    /// </summary>
    internal bool TryIsolate(Pfn pfn)
    {
        ref var frame = ref _memory.Frame(pfn);
        if (!frame.Has(FrameFlags.Lru))
        {
            return false;
        }

        var lruvec = LruvecOf(ref frame);
        lock (lruvec.Lock)
        {
            // Re-checked under the lock: the frame may have left the list (or its lruvec) since the unlocked test.
            if (!frame.Has(FrameFlags.Lru) || !ReferenceEquals(LruvecOf(ref frame), lruvec) || !_memory.TryGet(pfn))
            {
                return false;
            }

            lruvec.RemoveLocked(_memory.FrameTable, (uint)pfn.Value);
            frame.SetFlags(FrameFlags.Isolated);
            Interlocked.Increment(ref _isolated); // before the lock goes: on a list or counted isolated, never neither
        }

        return true;
    }

    /// <summary>Returns a frame <see cref="TryIsolate"/> isolated to its LRU (the active list when it was active) and drops the isolation reference.</summary>
    internal void PutBackIsolated(Pfn pfn)
    {
        ref var frame = ref _memory.Frame(pfn);
        PutBack(pfn, frame.Has(FrameFlags.Active) ? LruList.Active : LruList.Inactive);
    }

    /// <summary>
    /// The isolation of a migrated frame ends with the frame itself (its references were frozen and it is about to be
    /// freed): only the count of isolated frames changes.
    /// </summary>
    internal void ForgetIsolated() => Interlocked.Decrement(ref _isolated);

    /// <summary>Moves a swap-cache entry from a migrated frame to its copy (the caller holds both page locks and froze the old one).</summary>
    internal void MigrateSwapCache(ulong slot, Pfn from, Pfn to) => Cache!.Replace(slot, from, to);

    /// <summary>
    /// The (anon family, page index) pairs under which <paramref name="pfn"/>'s mappings are found: its own, or for a KSM
    /// page its sharers' (a snapshot). Migration walks the same snapshot to unmap and to restore, so a sharer the KSM
    /// scanner drops from the stable node meanwhile (its PTE is a migration entry, not a page) is still restored.
    /// </summary>
    internal List<(int Family, ulong Index)> RmapKeysOf(Pfn pfn)
    {
        ref var frame = ref _memory.Frame(pfn);
        if (frame.Has(FrameFlags.Ksm))
        {
            return _host.Ksm.SharersOf(pfn);
        }

        return frame.RmapOwner == FrameInfo.NoOwner ? [] : [(frame.RmapOwner, frame.RmapIndex)];
    }

    /// <summary>
    /// Calls <paramref name="visitor"/> at the mapping of page <paramref name="index"/> of anon family
    /// <paramref name="family"/> in each member process, trying each one's mmap lock without waiting
    /// (<c>try_to_migrate</c>'s walk). False when a member was skipped.
    /// </summary>
    internal bool WalkFamilyTrying<TVisitor>(Pfn pfn, int family, ulong index, ref TVisitor visitor)
        where TVisitor : struct, IRmapVisitor => WalkFamily(pfn, family, index, ref visitor, out _);

    /// <summary>
    /// Calls <paramref name="visitor"/> at the address of page <paramref name="index"/> of anon family
    /// <paramref name="family"/> in every member process, waiting for each one's mmap lock (read), and again for any
    /// process that joined the family meanwhile (a fork copies migration entries into its child after joining), until a
    /// pass finds no new member. Exited processes are skipped. This is <c>remove_migration_ptes</c>'s walk, which must
    /// not miss an entry; the caller holds only page locks, which no waiter of an mmap lock holds while it waits.
    /// </summary>
    internal void WalkFamilyWaiting<TVisitor>(int family, ulong index, ref TVisitor visitor)
        where TVisitor : struct, IRmapVisitor
    {
        var visited = new HashSet<Mm>();
        while (true)
        {
            var members = Rmap.MembersOf(family);
            var any = false;
            foreach (var mm in members)
            {
                if (!visited.Add(mm))
                {
                    continue;
                }

                any = true;
                if (!mm.EnterRmapReadWaiting(out var taken))
                {
                    continue;
                }

                try
                {
                    if (mm.TryFindAnonMapping(family, index, out var address))
                    {
                        visitor.Visit(mm, address);
                    }
                }
                finally
                {
                    if (taken)
                    {
                        mm.ExitRmapRead();
                    }
                }
            }

            if (!any)
            {
                return;
            }
        }
    }
}
