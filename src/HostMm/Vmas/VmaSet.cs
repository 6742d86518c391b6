using System.Collections;
using Hypervisor.Notifier.Intervals;

namespace Hypervisor.HostMm.Vmas;

/// <summary>
/// The VMAs of one host process (Linux's mm VMA tree): non-overlapping, page-aligned ranges kept in address
/// order, with O(log n) lookup by address. Every change to a VMA's range, protection or flags goes through
/// this class so that the index stays consistent.
/// </summary>
/// <remarks>
/// Not thread-safe: the owning mm's mmap lock guards it (read for lookups and enumeration, write for every
/// mutation). Enumeration must not overlap a mutation; <see cref="Intersecting"/> and
/// <see cref="SplitToRange"/> return fresh lists so callers can mutate the set while walking them.
/// </remarks>
public sealed class VmaSet : IEnumerable<Vma>
{
    // Invariants between calls: every VMA in _tree has Set == this and a Node keyed [Start, End - 1]; the
    // keys never overlap, so start order is address order and a point query finds at most one VMA;
    // _totalPages is the sum of Pages over the tree. Protection and flags are always valid.
    private readonly IntervalTree<Vma> _tree = new();
    private ulong _totalPages;

    /// <summary>Number of VMAs.</summary>
    public int Count => _tree.Count;

    /// <summary>Pages covered by all VMAs together.</summary>
    public ulong TotalPages => _totalPages;

    /// <summary>The VMA that contains <paramref name="address"/>, or null when it lies in a hole. O(log n).</summary>
    /// <param name="address">Any host address.</param>
    public Vma? Find(Hva address) => _tree.FirstOverlap(address.Value, address.Value)?.Value;

    /// <summary>
    /// The VMAs that overlap <c>[start, end)</c>, in ascending address order, as a fresh list the caller may
    /// keep while it changes the set. An empty range yields an empty list.
    /// </summary>
    /// <param name="start">Inclusive start (any address).</param>
    /// <param name="end">Exclusive end, not below <paramref name="start"/>.</param>
    /// <exception cref="InvalidRangeException"><paramref name="end"/> is below <paramref name="start"/>.</exception>
    public IReadOnlyList<Vma> Intersecting(Hva start, Hva end)
    {
        ThrowIfReversed(start, end, nameof(start));
        if (start == end)
        {
            return [];
        }

        var result = new List<Vma>();
        foreach (var node in _tree.Overlapping(start.Value, end.Value - 1))
        {
            result.Add(node.Value);
        }

        return result;
    }

    /// <summary>
    /// Adds a new anonymous mapping <c>[start, end)</c>: a fresh <see cref="Vma.AnonId"/> and
    /// <see cref="Vma.PageOffset"/> = <c>start.PageNumber</c>. No merging is done; call
    /// <see cref="MergeWithNeighbours"/> if wanted (a fresh mapping never merges: its AnonId is new).
    /// </summary>
    /// <param name="start">Page-aligned start.</param>
    /// <param name="end">Page-aligned exclusive end above <paramref name="start"/>.</param>
    /// <param name="protection">A valid protection.</param>
    /// <param name="flags">Valid flags.</param>
    /// <returns>The new VMA, now in the set.</returns>
    /// <exception cref="InvalidRangeException">The range is empty, reversed, unaligned or beyond the address space.</exception>
    /// <exception cref="InvalidProtectionException"><paramref name="protection"/> is invalid.</exception>
    /// <exception cref="InvalidVmaFlagsException"><paramref name="flags"/> are invalid.</exception>
    /// <exception cref="OverlappingMappingException">A VMA already covers part of the range.</exception>
    public Vma Add(Hva start, Hva end, Protection protection, VmaFlags flags)
    {
        InvalidRangeException.ThrowIfInvalidPageRange(start, end, nameof(start));
        ProtectionRules.Validate(protection, nameof(protection));
        InvalidVmaFlagsException.ThrowIfInvalid(flags, nameof(flags));
        ThrowIfOccupied(start, end, nameof(start));

        var vma = new Vma(start, end, protection, flags, start.PageNumber, Vma.NewAnonId());
        Index(vma);
        return vma;
    }

    /// <summary>
    /// Inserts an existing, detached VMA with all its fields kept (the destination of an mremap move, or a
    /// fork copy).
    /// </summary>
    /// <param name="vma">A VMA held by no set.</param>
    /// <exception cref="InvalidOperationException"><paramref name="vma"/> is already in a set.</exception>
    /// <exception cref="OverlappingMappingException">A VMA already covers part of its range.</exception>
    public void Insert(Vma vma)
    {
        ArgumentNullException.ThrowIfNull(vma);
        if (vma.Set is not null)
        {
            throw new InvalidOperationException(
                $"VMA {vma} is already in {(ReferenceEquals(vma.Set, this) ? "this" : "another")} set: only a detached VMA can be inserted");
        }

        ProtectionRules.Validate(vma.Protection, nameof(vma));
        InvalidVmaFlagsException.ThrowIfInvalid(vma.Flags, nameof(vma));
        ThrowIfOccupied(vma.Start, vma.End, nameof(vma));
        Index(vma);
    }

    /// <summary>Removes <paramref name="vma"/>; it becomes detached and may be inserted again.</summary>
    /// <param name="vma">A VMA of this set.</param>
    /// <exception cref="InvalidOperationException"><paramref name="vma"/> is not in this set.</exception>
    public void Remove(Vma vma)
    {
        ThrowIfNotMine(vma, nameof(vma));
        Unindex(vma);
    }

    /// <summary>
    /// Splits <paramref name="vma"/> at <paramref name="at"/> (Linux's <c>split_vma</c>): it keeps
    /// <c>[Start, at)</c> and a new VMA takes <c>[at, End)</c> with the same protection, flags and AnonId and
    /// PageOffset = left PageOffset + left pages, so every page keeps its page index.
    /// </summary>
    /// <param name="vma">A VMA of this set.</param>
    /// <param name="at">A page-aligned address strictly inside the VMA.</param>
    /// <returns>The new right part, now in the set.</returns>
    /// <exception cref="InvalidOperationException"><paramref name="vma"/> is not in this set.</exception>
    /// <exception cref="InvalidRangeException"><paramref name="at"/> is unaligned or not strictly inside.</exception>
    public Vma Split(Vma vma, Hva at)
    {
        ThrowIfNotMine(vma, nameof(vma));
        if (!at.IsPageAligned)
        {
            throw new InvalidRangeException(
                NotifierRule.UnalignedRange,
                $"split point {at} in VMA {vma} is not page-aligned: it must be a multiple of {Paging.PageSize}", nameof(at));
        }

        if (at <= vma.Start || at >= vma.End)
        {
            throw new InvalidRangeException(
                NotifierRule.AddressOutsideRange,
                $"split point {at} is not strictly inside VMA {vma}: it must lie in ({vma.Start}, {vma.End})", nameof(at));
        }

        var end = vma.End;
        var leftPages = (at - vma.Start) >> Paging.PageShift;
        var right = new Vma(at, end, vma.Protection, vma.Flags, vma.PageOffset + leftPages, vma.AnonId) { Policy = vma.Policy };
        Unindex(vma);
        vma.SetRange(vma.Start, at, vma.PageOffset);
        Index(vma);
        Index(right);
        return right;
    }

    /// <summary>Sets the protection of <paramref name="vma"/> (the VMA part of mprotect; page tables are the caller's).</summary>
    /// <param name="vma">A VMA of this set.</param>
    /// <param name="protection">A valid protection.</param>
    /// <exception cref="InvalidOperationException"><paramref name="vma"/> is not in this set.</exception>
    /// <exception cref="InvalidProtectionException"><paramref name="protection"/> is invalid.</exception>
    public void SetProtection(Vma vma, Protection protection)
    {
        ThrowIfNotMine(vma, nameof(vma));
        ProtectionRules.Validate(protection, nameof(protection));
        vma.Protection = protection;
    }

    /// <summary>Sets the NUMA policy of <paramref name="vma"/> (the VMA part of mbind).</summary>
    /// <param name="vma">A VMA of this set.</param>
    /// <param name="policy">The policy.</param>
    /// <exception cref="InvalidOperationException"><paramref name="vma"/> is not in this set.</exception>
    public void SetPolicy(Vma vma, Migration.NumaPolicy policy)
    {
        ThrowIfNotMine(vma, nameof(vma));
        vma.Policy = policy;
    }

    /// <summary>Sets the madvise flags of <paramref name="vma"/>.</summary>
    /// <param name="vma">A VMA of this set.</param>
    /// <param name="flags">Valid flags.</param>
    /// <exception cref="InvalidOperationException"><paramref name="vma"/> is not in this set.</exception>
    /// <exception cref="InvalidVmaFlagsException"><paramref name="flags"/> are invalid.</exception>
    public void SetFlags(Vma vma, VmaFlags flags)
    {
        ThrowIfNotMine(vma, nameof(vma));
        InvalidVmaFlagsException.ThrowIfInvalid(flags, nameof(flags));
        vma.Flags = flags;
    }

    /// <summary>
    /// Merges <paramref name="vma"/> with the VMA just before and/or just after it (Linux's <c>vma_merge</c>,
    /// simplified). Two VMAs merge when they are adjacent (left End == right Start), have equal protection,
    /// flags and AnonId, and contiguous page offsets (left PageOffset + left pages == right PageOffset), so
    /// every page keeps its page index. The lowest merged VMA survives and grows; the others are removed and
    /// detached.
    /// </summary>
    /// <param name="vma">A VMA of this set.</param>
    /// <returns>The VMA that now covers <paramref name="vma"/>'s range: <paramref name="vma"/> itself or its predecessor.</returns>
    /// <exception cref="InvalidOperationException"><paramref name="vma"/> is not in this set.</exception>
    public Vma MergeWithNeighbours(Vma vma)
    {
        ThrowIfNotMine(vma, nameof(vma));
        var prev = vma.Start == Hva.Zero ? null : Find(vma.Start - 1UL);
        var next = Find(vma.End);
        var mergePrev = prev is not null && CanMerge(prev, vma);
        var mergeNext = next is not null && CanMerge(vma, next);
        if (!mergePrev && !mergeNext)
        {
            return vma;
        }

        var survivor = mergePrev ? prev! : vma;
        var newEnd = mergeNext ? next!.End : vma.End;
        if (mergePrev)
        {
            Unindex(vma);
        }

        if (mergeNext)
        {
            Unindex(next!);
        }

        Unindex(survivor);
        survivor.SetRange(survivor.Start, newEnd, survivor.PageOffset);
        Index(survivor);
        return survivor;
    }

    /// <summary>
    /// Moves the end of <paramref name="vma"/> to <paramref name="newEnd"/>, growing or shrinking it in place
    /// (mremap without a move); Start and PageOffset stay, so every remaining page keeps its index.
    /// </summary>
    /// <param name="vma">A VMA of this set.</param>
    /// <param name="newEnd">Page-aligned, above Start, not beyond the address space end.</param>
    /// <exception cref="InvalidOperationException"><paramref name="vma"/> is not in this set.</exception>
    /// <exception cref="InvalidRangeException"><paramref name="newEnd"/> is unaligned, not above Start, or beyond the address space.</exception>
    /// <exception cref="OverlappingMappingException">Growing would cover another VMA.</exception>
    public void Resize(Vma vma, Hva newEnd)
    {
        ThrowIfNotMine(vma, nameof(vma));
        if (!newEnd.IsPageAligned || newEnd <= vma.Start || newEnd > Hva.AddressSpaceEnd)
        {
            var rule = !newEnd.IsPageAligned ? NotifierRule.UnalignedRange
                : newEnd <= vma.Start ? NotifierRule.EmptyOrReversedRange
                : NotifierRule.OutsideAddressSpace;
            throw new InvalidRangeException(
                rule,
                $"new end {newEnd} for VMA {vma} is invalid: it must be page-aligned, above {vma.Start} and not beyond {Hva.AddressSpaceEnd}",
                nameof(newEnd));
        }

        if (newEnd == vma.End)
        {
            return;
        }

        if (newEnd > vma.End)
        {
            var blocker = _tree.FirstOverlap(vma.End.Value, newEnd.Value - 1)?.Value;
            if (blocker is not null)
            {
                throw new OverlappingMappingException(vma.Start, newEnd, blocker.Start, blocker.End, nameof(newEnd));
            }
        }

        Unindex(vma);
        vma.SetRange(vma.Start, newEnd, vma.PageOffset);
        Index(vma);
    }

    /// <summary>
    /// First fit: the lowest page-aligned address <c>a</c> at or above <paramref name="low"/> such that
    /// <c>[a, a + length)</c> lies in <c>[low, high)</c> and no VMA overlaps it; null when there is none.
    /// O(log n + k) for the k VMAs between <paramref name="low"/> and the gap.
    /// </summary>
    /// <param name="length">Bytes wanted: positive and page-aligned.</param>
    /// <param name="low">Lowest usable address (rounded up to a page boundary).</param>
    /// <param name="high">Exclusive upper bound, not below <paramref name="low"/>, not beyond the address space end.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="length"/> is zero or unaligned.</exception>
    /// <exception cref="InvalidRangeException"><paramref name="high"/> is below <paramref name="low"/> or beyond the address space.</exception>
    public Hva? FindGap(ulong length, Hva low, Hva high)
    {
        if (length == 0 || !Paging.IsPageAligned(length))
        {
            throw new ArgumentOutOfRangeException(
                nameof(length), $"gap length 0x{length:x} is invalid: it must be a positive multiple of {Paging.PageSize}");
        }

        ThrowIfReversed(low, high, nameof(low));
        if (high > Hva.AddressSpaceEnd)
        {
            throw new InvalidRangeException(
                NotifierRule.OutsideAddressSpace,
                $"gap bound {high} is beyond the address space end {Hva.AddressSpaceEnd}", nameof(high));
        }

        // Invariant: no gap of `length` starts below `candidate` inside [low, high); candidate is aligned.
        var candidate = low.PageAlignedUp;
        if (candidate >= high)
        {
            return null;
        }

        foreach (var node in _tree.Overlapping(candidate.Value, high.Value - 1))
        {
            var vma = node.Value;
            if (vma.Start > candidate && vma.Start - candidate >= length)
            {
                return candidate;
            }

            if (vma.End > candidate)
            {
                candidate = vma.End;
            }

            if (candidate >= high)
            {
                return null;
            }
        }

        return high - candidate >= length ? candidate : null;
    }

    /// <summary>True when VMAs cover every address of <c>[start, end)</c> without a hole; an empty range is fully mapped.</summary>
    /// <param name="start">Inclusive start (any address).</param>
    /// <param name="end">Exclusive end, not below <paramref name="start"/>.</param>
    /// <exception cref="InvalidRangeException"><paramref name="end"/> is below <paramref name="start"/>.</exception>
    public bool IsFullyMapped(Hva start, Hva end)
    {
        ThrowIfReversed(start, end, nameof(start));
        // Invariant: [start, covered) has no hole.
        var covered = start;
        if (covered >= end)
        {
            return true;
        }

        foreach (var node in _tree.Overlapping(start.Value, end.Value - 1))
        {
            var vma = node.Value;
            if (vma.Start > covered)
            {
                return false;
            }

            covered = vma.End;
            if (covered >= end)
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>
    /// Splits the VMAs that straddle <paramref name="start"/> or <paramref name="end"/> there, and returns the
    /// VMAs now lying wholly inside <c>[start, end)</c>, in address order (holes between them allowed; empty
    /// when nothing is mapped). The first step of munmap and mprotect.
    /// </summary>
    /// <param name="start">Page-aligned start.</param>
    /// <param name="end">Page-aligned exclusive end above <paramref name="start"/>.</param>
    /// <exception cref="InvalidRangeException">The range is empty, reversed, unaligned or beyond the address space.</exception>
    public IReadOnlyList<Vma> SplitToRange(Hva start, Hva end)
    {
        InvalidRangeException.ThrowIfInvalidPageRange(start, end, nameof(start));
        var first = Find(start);
        if (first is not null && first.Start < start)
        {
            Split(first, start);
        }

        var last = Find(end - 1UL);
        if (last is not null && last.End > end)
        {
            Split(last, end);
        }

        return Intersecting(start, end);
    }

    /// <summary>
    /// A deep copy for fork: new <see cref="Vma"/> objects with the same ranges, protection, flags, page
    /// offsets and AnonIds. The copies are independent of this set and its VMAs.
    /// </summary>
    public VmaSet CloneForFork()
    {
        var clone = new VmaSet();
        foreach (var vma in this)
        {
            clone.Index(vma.CopyTo(vma.Start));
        }

        return clone;
    }

    /// <summary>Enumerates the VMAs in address order. The set must not change during the enumeration.</summary>
    /// <exception cref="InvalidOperationException">The set changed during the enumeration.</exception>
    public IEnumerator<Vma> GetEnumerator()
    {
        foreach (var node in _tree.Overlapping(0, ulong.MaxValue))
        {
            yield return node.Value;
        }
    }

    /// <inheritdoc />
    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();

    /// <summary>Throws <see cref="InvalidOperationException"/> naming the first broken invariant; for tests and audits.</summary>
    internal void CheckInvariants()
    {
        ulong pages = 0;
        var count = 0;
        Vma? previous = null;
        foreach (var node in _tree.Overlapping(0, ulong.MaxValue))
        {
            var vma = node.Value;
            if (!ReferenceEquals(vma.Set, this) || !ReferenceEquals(vma.Node, node))
            {
                throw new InvalidOperationException($"VMA {vma} is in the index but not owned by this set");
            }

            if (node.Start != vma.Start.Value || node.Last != vma.End.Value - 1)
            {
                throw new InvalidOperationException($"VMA {vma} is indexed as {node}: the key must equal [Start, End - 1]");
            }

            if (previous is not null && previous.End > vma.Start)
            {
                throw new InvalidOperationException($"VMA {previous} overlaps VMA {vma}");
            }

            if (!ProtectionRules.IsValid(vma.Protection))
            {
                throw new InvalidOperationException($"VMA {vma} has an invalid protection");
            }

            pages += vma.Pages;
            count++;
            previous = vma;
        }

        if (pages != _totalPages || count != _tree.Count)
        {
            throw new InvalidOperationException(
                $"counters are off: {_tree.Count} VMAs / {_totalPages} pages recorded, {count} / {pages} found");
        }
    }

    /// <summary>Merge rule: adjacent, same protection, flags and AnonId, contiguous page offsets.</summary>
    private static bool CanMerge(Vma left, Vma right) =>
        left.End == right.Start
        && left.Protection == right.Protection
        && left.Flags == right.Flags
        && left.Policy == right.Policy
        && left.AnonId == right.AnonId
        && left.PageOffset + left.Pages == right.PageOffset;

    private static void ThrowIfReversed(Hva start, Hva end, string paramName)
    {
        if (end < start)
        {
            throw new InvalidRangeException(NotifierRule.EmptyOrReversedRange, $"range [{start}, {end}) is reversed: end must not be below start", paramName);
        }
    }

    private void ThrowIfNotMine(Vma vma, string paramName)
    {
        ArgumentNullException.ThrowIfNull(vma, paramName);
        if (!ReferenceEquals(vma.Set, this))
        {
            throw new InvalidOperationException(vma.Set is null
                ? $"VMA {vma} is detached (removed or merged away): the operation needs a VMA of this set"
                : $"VMA {vma} belongs to another set: the operation needs a VMA of this set");
        }
    }

    private void ThrowIfOccupied(Hva start, Hva end, string paramName)
    {
        var existing = _tree.FirstOverlap(start.Value, end.Value - 1)?.Value;
        if (existing is not null)
        {
            throw new OverlappingMappingException(start, end, existing.Start, existing.End, paramName);
        }
    }

    /// <summary>Puts a detached VMA whose range is free into the index and the counters.</summary>
    private void Index(Vma vma)
    {
        vma.Node = _tree.Insert(vma.Start.Value, vma.End.Value - 1, vma);
        vma.Set = this;
        _totalPages += vma.Pages;
    }

    /// <summary>Takes a VMA of this set out of the index and the counters; it becomes detached.</summary>
    private void Unindex(Vma vma)
    {
        _tree.Remove(vma.Node!);
        vma.Node = null;
        vma.Set = null;
        _totalPages -= vma.Pages;
    }
}
