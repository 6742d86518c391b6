using Hypervisor.Notifier;

namespace Hypervisor.Vmm.Demo;

/// <summary>
/// Where the demo's pieces sit, relative to the one anonymous mapping the host chose for it: the mapping,
/// the recorder's interval subscription and the user channel's regions, all in pages of that mapping.
/// </summary>
/// <param name="MappingStart">The address <c>mmap</c> returned.</param>
internal sealed record HostDemoLayout(Hva MappingStart)
{
    /// <summary>Pages in the mapping.</summary>
    public const int Pages = 64;

    /// <summary>First page of the recorder's interval subscription.</summary>
    public const int IntervalFirstPage = 16;

    /// <summary>Page after the last page of the recorder's interval subscription.</summary>
    public const int IntervalEndPage = 48;

    /// <summary>Exclusive end of the mapping.</summary>
    public Hva MappingEnd => Page(Pages);

    /// <summary>Start of the recorder's interval subscription (page 16).</summary>
    public Hva IntervalStart => Page(IntervalFirstPage);

    /// <summary>Exclusive end of the recorder's interval subscription (page 48).</summary>
    public Hva IntervalEnd => Page(IntervalEndPage);

    /// <summary>The user channel's regions: cookie 1 = pages 0..15, 2 = pages 32..47, 3 = pages 48..63.</summary>
    public IReadOnlyList<(ulong Cookie, Hva Start, Hva End)> UserRegions =>
    [
        (1, Page(0), Page(16)),
        (2, Page(32), Page(48)),
        (3, Page(48), Page(64)),
    ];

    /// <summary>The address of page <paramref name="index"/> of the mapping (indices past its end are fine).</summary>
    public Hva Page(int index) => MappingStart + ((ulong)index * Paging.PageSize);

    /// <summary>The page index of <paramref name="address"/> relative to the mapping's start.</summary>
    public long PageIndex(Hva address) => (long)(address.Value - MappingStart.Value) / (long)Paging.PageSize;

    /// <summary>
    /// A range as the demo prints it: "pages 8-15" or "page 5" (an address names its page), "whole mm", or
    /// nothing; <c>[start, end)</c> in addresses for anything that is not whole pages of the mapping's region.
    /// </summary>
    public string DescribeRange(Hva start, Hva end)
    {
        if (start == Hva.Zero)
        {
            return HostDemoReport.FormatRange(start, end);
        }

        if (start >= MappingStart && end == start + 1)
        {
            return $"page {PageIndex(start)}";
        }

        return start >= MappingStart && start.IsPageAligned && end.IsPageAligned && end > start
            ? DescribePages(start, end)
            : HostDemoReport.FormatRange(start, end);
    }

    /// <summary>"page 5" or "pages 8-15": the pages of <c>[start, end)</c> by index, for step labels.</summary>
    public string DescribePages(Hva start, Hva end)
    {
        var first = PageIndex(start);
        var last = PageIndex(end) - 1;
        return first == last ? $"page {first}" : $"pages {first}-{last}";
    }
}
