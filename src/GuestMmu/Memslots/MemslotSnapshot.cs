using System.Collections.ObjectModel;
using Hypervisor.Notifier.Intervals;

namespace Hypervisor.GuestMmu.Memslots;

/// <summary>
/// One immutable generation of a VM's memslots (KVM's <c>struct kvm_memslots</c>): the slots sorted by guest
/// frame for the fault path's lookup, sorted by id, and an HVA interval tree for the notifier handlers.
/// </summary>
/// <remarks>
/// <para>Published by <see cref="MemslotSet"/> and never changed afterwards, so any number of threads may read
/// it without locks. A reader that needs several lookups to agree (the fault path, a notifier walk) takes
/// <see cref="MemslotSet.Current"/> once and uses that snapshot throughout.</para>
/// <para>Invariants: <c>_byGfn</c> is sorted by <see cref="Memslot.BaseGfn"/> and its guest ranges are pairwise
/// disjoint (so their ends are sorted too); <c>_byId</c> holds the same slots sorted by a unique
/// <see cref="Memslot.Id"/>; every slot's <see cref="Memslot.Generation"/> is at most
/// <see cref="Generation"/>. The only mutable fields are caches that any value keeps correct: the
/// last-hit index (a hint, re-validated on every use) and the HVA tree (built whole on first use and published
/// once by compare-and-swap; never mutated after publication).</para>
/// </remarks>
public sealed class MemslotSnapshot
{
    private readonly Memslot[] _byGfn;
    private readonly Memslot[] _byId;
    private readonly ReadOnlyCollection<Memslot> _slots;

    // Built lazily so that a run of SetRegion calls costs O(n) each and the O(n log n) build is paid once, by
    // the first HVA query of the generation. Null until then; afterwards never replaced or mutated.
    private IntervalTree<Memslot>? _hvaTree;

    // Index into _byGfn of the slot the last FindByGfn hit (KVM's last_used_slot). Written racily by readers;
    // an int write cannot tear and FindByGfn re-checks the hinted slot, so a stale value only costs a search.
    private int _lastHit;

    private MemslotSnapshot(Memslot[] byGfn, Memslot[] byId, long generation)
    {
        _byGfn = byGfn;
        _byId = byId;
        _slots = Array.AsReadOnly(byGfn);
        Generation = generation;
    }

    /// <summary>The generation 0 snapshot: no slots.</summary>
    internal static MemslotSnapshot Empty { get; } = new([], [], 0);

    /// <summary>The generation this snapshot was published as (0 for the empty initial set).</summary>
    public long Generation { get; }

    /// <summary>Number of slots.</summary>
    public int Count => _byGfn.Length;

    /// <summary>The slots in ascending guest-physical order.</summary>
    public IReadOnlyList<Memslot> Slots => _slots;

    /// <summary>
    /// The slot that contains <paramref name="gfn"/>, or null when the frame is in a hole (KVM's
    /// <c>gfn_to_memslot</c>: a one-entry last-hit cache, then a binary search; O(log n), lock-free, no
    /// allocation).
    /// </summary>
    /// <param name="gfn">The guest frame.</param>
    public Memslot? FindByGfn(Gfn gfn)
    {
        var slots = _byGfn;
        var hint = _lastHit;
        if ((uint)hint < (uint)slots.Length && slots[hint].ContainsGfn(gfn))
        {
            return slots[hint];
        }

        // Find the last slot whose base is at or below gfn; only it can contain gfn (ranges are disjoint).
        int low = 0, high = slots.Length - 1, found = -1;
        while (low <= high)
        {
            var mid = (int)((uint)(low + high) >> 1);
            if (slots[mid].BaseGfn.Value <= gfn.Value)
            {
                found = mid;
                low = mid + 1;
            }
            else
            {
                high = mid - 1;
            }
        }

        if (found < 0 || !slots[found].ContainsGfn(gfn))
        {
            return null;
        }

        if (hint != found)
        {
            _lastHit = found;
        }

        return slots[found];
    }

    /// <summary>The slot with id <paramref name="id"/>, or null (KVM's <c>id_to_memslot</c>; O(log n)).</summary>
    /// <param name="id">The slot id.</param>
    public Memslot? FindById(int id)
    {
        var slots = _byId;
        int low = 0, high = slots.Length - 1;
        while (low <= high)
        {
            var mid = (int)((uint)(low + high) >> 1);
            var midId = slots[mid].Id;
            if (midId == id)
            {
                return slots[mid];
            }

            if (midId < id)
            {
                low = mid + 1;
            }
            else
            {
                high = mid - 1;
            }
        }

        return null;
    }

    /// <summary>
    /// Every slot of <paramref name="mm"/> whose userspace range intersects <c>[start, end)</c>, with the guest
    /// frames the range touches (KVM's walk of <c>slots->hva_tree</c> in <c>kvm_handle_hva_range</c>).
    /// O(log n + k), allocation-free once the generation's HVA tree exists (the first query builds it).
    /// Several slots may map overlapping host ranges of the same mm; each is yielded.
    /// </summary>
    /// <param name="mm">The host process whose range changed; slots of other mms are skipped.</param>
    /// <param name="start">Inclusive start of the host range; need not be page-aligned.</param>
    /// <param name="end">Exclusive end of the host range, above <paramref name="start"/>; need not be page-aligned.</param>
    /// <exception cref="ArgumentNullException"><paramref name="mm"/> is null.</exception>
    /// <exception cref="InvalidRangeException"><paramref name="end"/> is not above <paramref name="start"/>.</exception>
    public MemslotHvaEnumerator OverlappingHva(IMm mm, Hva start, Hva end)
    {
        ArgumentNullException.ThrowIfNull(mm);
        if (end <= start)
        {
            throw new InvalidRangeException(
                $"host range [{start}, {end}) is empty or reversed: a memslot HVA query needs end above start",
                nameof(end));
        }

        if (_byGfn.Length == 0)
        {
            return new MemslotHvaEnumerator(default, mm, start, end);
        }

        return new MemslotHvaEnumerator(HvaTree().Overlapping(start.Value, end.Value - 1), mm, start, end);
    }

    /// <summary>
    /// The first slot in guest order, other than id <paramref name="exceptId"/>, whose guest range intersects
    /// <c>[start, end)</c>; null when none does. O(log n).
    /// </summary>
    internal Memslot? FirstGfnOverlap(Gfn start, Gfn end, int exceptId)
    {
        var slots = _byGfn;

        // First slot whose end is above start (ends are sorted because ranges are disjoint).
        int low = 0, high = slots.Length;
        while (low < high)
        {
            var mid = (int)((uint)(low + high) >> 1);
            if (slots[mid].EndGfn.Value > start.Value)
            {
                high = mid;
            }
            else
            {
                low = mid + 1;
            }
        }

        // At most two candidates: the slot being moved may sit in the way of one other.
        for (var i = low; i < slots.Length && slots[i].BaseGfn.Value < end.Value; i++)
        {
            if (slots[i].Id != exceptId)
            {
                return slots[i];
            }
        }

        return null;
    }

    /// <summary>
    /// A new snapshot at <paramref name="generation"/> that holds this one's slots without
    /// <paramref name="removed"/> and with <paramref name="added"/>. O(n). The caller has checked that
    /// <paramref name="added"/> overlaps no remaining slot and that its id is free once
    /// <paramref name="removed"/> is gone.
    /// </summary>
    internal MemslotSnapshot With(Memslot? removed, Memslot? added, long generation) =>
        new(
            Splice(_byGfn, removed, added, static (a, b) => a.BaseGfn.Value < b.BaseGfn.Value),
            Splice(_byId, removed, added, static (a, b) => a.Id < b.Id),
            generation);

    private static Memslot[] Splice(Memslot[] source, Memslot? removed, Memslot? added, Func<Memslot, Memslot, bool> less)
    {
        var length = source.Length - (removed is null ? 0 : 1) + (added is null ? 0 : 1);
        var result = new Memslot[length];
        var count = 0;
        var pending = added;
        foreach (var slot in source)
        {
            if (ReferenceEquals(slot, removed))
            {
                continue;
            }

            if (pending is not null && less(pending, slot))
            {
                result[count++] = pending;
                pending = null;
            }

            result[count++] = slot;
        }

        if (pending is not null)
        {
            result[count++] = pending;
        }

        if (count != length)
        {
            throw new InvalidOperationException(
                $"memslot snapshot splice produced {count} slots instead of {length}: the slot to remove was not in the snapshot");
        }

        return result;
    }

    private IntervalTree<Memslot> HvaTree()
    {
        var tree = Volatile.Read(ref _hvaTree);
        if (tree is not null)
        {
            return tree;
        }

        // Build privately, then publish whole: CompareExchange is a full fence, so a reader that sees the
        // tree sees every node. If another reader won the race, use its tree and drop ours.
        tree = new IntervalTree<Memslot>();
        foreach (var slot in _byGfn)
        {
            tree.Insert(slot.UserspaceAddress.Value, slot.UserspaceEnd.Value - 1, slot);
        }

        return Interlocked.CompareExchange(ref _hvaTree, tree, null) ?? tree;
    }
}
