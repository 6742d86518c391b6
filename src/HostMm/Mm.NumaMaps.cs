using Hypervisor.HostMm.PageTables;

namespace Hypervisor.HostMm;

/// <summary>numa_maps: where a range's resident pages are, per NUMA node.</summary>
public sealed partial class Mm
{
    /// <summary>
    /// The resident pages of <c>[start, end)</c> per NUMA node, as Linux's <c>/proc/PID/numa_maps</c> shows them
    /// (<c>N0=… N1=…</c>): element n counts the pages whose frame is on node n. Present entries and PROT_NONE entries
    /// (NUMA hinting; they still map their frame) count, and each 2 MiB huge leaf counts its pages inside the range; the
    /// shared zero page and the huge zero page do not (numa_maps skips them, as <c>vm_normal_page</c> does), nor do swap
    /// or migration entries (nothing resident to place). Walks under the mmap
    /// lock for read, so the counts are one consistent walk, though a page may move while it runs.
    /// </summary>
    /// <param name="start">The first address, page aligned.</param>
    /// <param name="end">The end (exclusive), page aligned, not below <paramref name="start"/>.</param>
    /// <returns>One count per node of the host, <see cref="Frames.HostMemory.NodeCount"/> elements.</returns>
    /// <exception cref="InvalidRangeException">An address is not page aligned, or the range is reversed or leaves the user address space.</exception>
    public long[] ResidentPagesPerNode(Hva start, Hva end)
    {
        if (!start.IsPageAligned || !end.IsPageAligned)
        {
            throw new InvalidRangeException(
                NotifierRule.UnalignedRange,
                $"numa_maps of [{start}, {end}): both ends must be multiples of {Paging.PageSize}",
                start.IsPageAligned ? nameof(end) : nameof(start));
        }

        if (end < start || end > UserSpaceEnd)
        {
            throw new InvalidRangeException(
                end < start ? NotifierRule.EmptyOrReversedRange : NotifierRule.OutsideAddressSpace,
                $"numa_maps of [{start}, {end}): the end must be at or after the start and at or below {UserSpaceEnd}",
                nameof(end));
        }

        var pages = new long[Host.Memory.NodeCount];
        if (end == start)
        {
            return pages;
        }

        EnterRead("numa_maps");
        try
        {
            var visitor = new NodeCountingVisitor(Host.Memory, Host.ZeroPfn, pages);
            _pageTable.Walk(start, end, allocate: false, ref visitor);

            // Transparent huge pages: each 2 MiB leaf maps 512 frames of one node (the huge zero page counts as the
            // zero page does: not at all); only the part inside the range counts.
            _pageTable.ForEachHuge(start, end, (address, leaf) =>
            {
                if (!Host.IsHugeZeroPage(leaf.Pfn))
                {
                    var first = Math.Max(address.Value, start.Value);
                    var last = Math.Min(address.Value + HostPageTable.HugePageSize, end.Value);
                    pages[Host.Memory.NodeOf(leaf.Pfn)] += (long)((last - first) / Paging.PageSize);
                }
            });
        }
        finally
        {
            _mmapLock.ExitReadLock();
        }

        return pages;
    }
}
