using System.Globalization;
using Hypervisor.Notifier.Intervals;

namespace Hypervisor.HostMm.Vmas;

/// <summary>
/// One virtual memory area of a host process (Linux's <c>vm_area_struct</c>): a page-aligned range
/// <c>[Start, End)</c> of private anonymous memory with one protection, one set of advice flags and one
/// anonymous-mapping identity. A VMA is either held by exactly one <see cref="VmaSet"/> or detached
/// (removed, merged away, or freshly created for <see cref="VmaSet.Insert"/>).
/// </summary>
/// <remarks>
/// Page identity: every page of the VMA has a linear index <see cref="PageIndexOf"/> =
/// <see cref="PageOffset"/> + its page distance from <see cref="Start"/> (Linux's <c>linear_page_index</c>).
/// Together with <see cref="AnonId"/> the index names an anonymous page independently of where it is mapped
/// now: splits keep it, a moved VMA keeps it, a fork copy keeps it, so reverse mapping and KSM can find a
/// page after mremap. Mutators are internal and used only through <see cref="VmaSet"/>; the range can change
/// only while the VMA is detached from its set's index, which keeps the index consistent.
/// </remarks>
public sealed class Vma
{
    /// <summary>Last anonymous-mapping identity handed out; process-wide so ids are unique across every mm.</summary>
    private static long s_lastAnonId;

    /// <summary>Creates a detached VMA; validation of the range is the caller's job (see <see cref="VmaSet"/>).</summary>
    internal Vma(Hva start, Hva end, Protection protection, VmaFlags flags, ulong pageOffset, long anonId)
    {
        InvalidRangeException.ThrowIfInvalidPageRange(start, end, nameof(start));
        Start = start;
        End = end;
        Protection = protection;
        Flags = flags;
        PageOffset = pageOffset;
        AnonId = anonId;
    }

    /// <summary>Inclusive, page-aligned start.</summary>
    public Hva Start { get; private set; }

    /// <summary>Exclusive, page-aligned end; always above <see cref="Start"/>.</summary>
    public Hva End { get; private set; }

    /// <summary>Number of pages, at least one.</summary>
    public ulong Pages => (End - Start) >> Paging.PageShift;

    /// <summary>Length in bytes (<see cref="End"/> − <see cref="Start"/>).</summary>
    public ulong Length => End - Start;

    /// <summary>The access the VMA grants; always valid under <see cref="ProtectionRules"/>.</summary>
    public Protection Protection { get; internal set; }

    /// <summary>The madvise flags; always valid (never both huge-page advices).</summary>
    public VmaFlags Flags { get; internal set; }

    /// <summary>The NUMA memory policy its faults allocate by (<see cref="Mm.Mbind"/>); local by default.</summary>
    public Migration.NumaPolicy Policy { get; internal set; }

    /// <summary>
    /// Linux's <c>vm_pgoff</c> for anonymous memory: the linear page index of <see cref="Start"/> in the
    /// mapping it was created as. A new mapping gets <c>Start.PageNumber</c>; a split's right part gets the
    /// left part's offset plus the left part's pages; a moved VMA keeps its offset.
    /// </summary>
    public ulong PageOffset { get; private set; }

    /// <summary>
    /// Identity of the anonymous mapping (Linux's <c>anon_vma</c> role): unique per new mapping, shared by the
    /// parts of a split, by moved VMAs and by fork copies.
    /// </summary>
    public long AnonId { get; }

    /// <summary>True while a <see cref="VmaSet"/> holds the VMA.</summary>
    public bool IsInSet => Set is not null;

    /// <summary>The set that holds the VMA; null when detached. Changed only by <see cref="VmaSet"/>.</summary>
    internal VmaSet? Set;

    /// <summary>The VMA's node in its set's index, keyed <c>[Start, End − 1]</c>; null when detached.</summary>
    internal IntervalTreeNode<Vma>? Node;

    /// <summary>True when <paramref name="address"/> lies in <c>[Start, End)</c>.</summary>
    /// <param name="address">Any host address.</param>
    public bool Contains(Hva address) => address >= Start && address < End;

    /// <summary>The linear page index of the page holding <paramref name="address"/>: <c>PageOffset + (address − Start) / 4096</c>.</summary>
    /// <param name="address">An address inside the VMA.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="address"/> is outside <c>[Start, End)</c>.</exception>
    public ulong PageIndexOf(Hva address)
    {
        if (!Contains(address))
        {
            throw new ArgumentOutOfRangeException(
                nameof(address), $"address {address} is outside VMA {this}: a page index exists only for addresses in [Start, End)");
        }

        return PageOffset + ((address - Start) >> Paging.PageShift);
    }

    /// <summary>The address of the page with linear index <paramref name="index"/>; the inverse of <see cref="PageIndexOf"/>.</summary>
    /// <param name="index">A page index in <c>[PageOffset, PageOffset + Pages)</c>.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="index"/> is not an index of this VMA's pages.</exception>
    public Hva AddressOfIndex(ulong index)
    {
        if (index < PageOffset || index - PageOffset >= Pages)
        {
            throw new ArgumentOutOfRangeException(
                nameof(index),
                $"page index 0x{index:x} is outside VMA {this}: its pages have indices [0x{PageOffset:x}, 0x{PageOffset + Pages:x})");
        }

        return Start + ((index - PageOffset) << Paging.PageShift);
    }

    /// <summary>The <c>/proc/pid/maps</c>-like form, e.g. <c>[0x7f0000000000, 0x7f0000004000) rw- anon#3 pgoff 0x7f0000000</c>, followed by the flags when any are set.</summary>
    public override string ToString()
    {
        var text = $"[{Start}, {End}) {ProtectionRules.ToRwx(Protection)} anon#{AnonId.ToString(CultureInfo.InvariantCulture)} pgoff 0x{PageOffset.ToString("x", CultureInfo.InvariantCulture)}";
        return Flags == VmaFlags.None ? text : $"{text} {Flags}";
    }

    /// <summary>A fresh anonymous-mapping identity, unique in the process.</summary>
    internal static long NewAnonId() => Interlocked.Increment(ref s_lastAnonId);

    /// <summary>
    /// A detached copy at <paramref name="newStart"/> with the same length, protection, flags, page offset and
    /// anonymous identity: the VMA mremap inserts at the destination (Linux's <c>copy_vma</c>), or, at
    /// <see cref="Start"/>, a fork copy.
    /// </summary>
    /// <param name="newStart">Page-aligned start of the copy.</param>
    /// <exception cref="InvalidRangeException">The copy would be unaligned or end beyond the address space.</exception>
    internal Vma CopyTo(Hva newStart)
    {
        if (!newStart.IsPageAligned || newStart > Hva.AddressSpaceEnd || Hva.AddressSpaceEnd - newStart < Length)
        {
            throw new InvalidRangeException(
                newStart.IsPageAligned ? NotifierRule.OutsideAddressSpace : NotifierRule.UnalignedRange,
                $"cannot copy VMA {this} to {newStart}: the copy [{newStart}, +0x{Length:x}) must be page-aligned and end by {Hva.AddressSpaceEnd}",
                nameof(newStart));
        }

        return new Vma(newStart, newStart + Length, Protection, Flags, PageOffset, AnonId) { Policy = Policy };
    }

    /// <summary>
    /// Changes the range and page offset. Invariant kept: the range of a VMA changes only while it is out of
    /// its set's index, so the index key always equals <c>[Start, End − 1]</c>.
    /// </summary>
    internal void SetRange(Hva start, Hva end, ulong pageOffset)
    {
        if (Node is not null)
        {
            throw new InvalidOperationException(
                $"VMA {this} is still indexed: its range may change only while it is out of the set's index");
        }

        InvalidRangeException.ThrowIfInvalidPageRange(start, end, nameof(start));
        Start = start;
        End = end;
        PageOffset = pageOffset;
    }
}
