using Hypervisor.Notifier.Intervals;

namespace Hypervisor.GuestMmu.Memslots;

/// <summary>
/// Allocation-free enumerator over the memslots of one mm whose userspace range intersects a host range, each
/// yielded with the guest frames the range touches (<see cref="Memslot.TryClampHvaRange"/>): the walk of KVM's
/// <c>kvm_handle_hva_range</c>. Slots come in ascending userspace-address order. Use it with <c>foreach</c> on
/// <see cref="MemslotSnapshot.OverlappingHva"/> or <see cref="MemslotSet.OverlappingHva"/>.
/// </summary>
/// <remarks>
/// It walks one immutable <see cref="MemslotSnapshot"/>: a concurrent <see cref="MemslotSet.SetRegion"/> does
/// not affect it, so a walk sees either every slot of the old generation or (in a later walk) the new one.
/// Cost: O(log n + k) where k counts the overlapping slots of every mm; those of other mms are skipped.
/// </remarks>
public struct MemslotHvaEnumerator
{
    private IntervalTreeOverlapEnumerator<Memslot> _nodes;
    private readonly IMm? _mm;
    private readonly Hva _start;
    private readonly Hva _end;
    private MemslotGfnRange _current;
    private bool _onItem;

    internal MemslotHvaEnumerator(IntervalTreeOverlapEnumerator<Memslot> nodes, IMm mm, Hva start, Hva end)
    {
        _nodes = nodes;
        _mm = mm;
        _start = start;
        _end = end;
        _current = default;
        _onItem = false;
    }

    /// <summary>The current slot and its clamped guest-frame range.</summary>
    /// <exception cref="InvalidOperationException">Before the first <see cref="MoveNext"/> or after the last.</exception>
    public readonly MemslotGfnRange Current =>
        _onItem
            ? _current
            : throw new InvalidOperationException(
                "the enumerator is not on a memslot: call MoveNext and use Current only while it returns true");

    /// <summary>Returns this enumerator, so that <c>foreach</c> works on it directly.</summary>
    public readonly MemslotHvaEnumerator GetEnumerator() => this;

    /// <summary>Advances to the next overlapping slot of the mm.</summary>
    /// <returns>True when <see cref="Current"/> is a slot; false once every match has been yielded.</returns>
    public bool MoveNext()
    {
        while (_nodes.MoveNext())
        {
            var slot = _nodes.Current.Value;
            if (!ReferenceEquals(slot.Mm, _mm))
            {
                continue;
            }

            // The tree matched [start, end - 1] against [UserspaceAddress, UserspaceEnd - 1], so the
            // intersection is non-empty and the clamp succeeds.
            if (slot.TryClampHvaRange(_start, _end, out var gfnStart, out var gfnEnd))
            {
                _current = new MemslotGfnRange(slot, gfnStart, gfnEnd);
                _onItem = true;
                return true;
            }
        }

        _current = default;
        _onItem = false;
        return false;
    }
}
