using Hypervisor.HostMm.PageTables;

namespace Hypervisor.HostMm;

/// <summary>
/// Records which address ranges of a process have PTE tables, so fork can allocate the child's tables
/// before it copies (a frame is never allocated under a page-table lock).
/// </summary>
internal struct PopulatedTablesVisitor : IPteVisitor
{
    public PopulatedTablesVisitor()
    {
    }

    /// <summary>The ranges found, in address order.</summary>
    public List<(Hva Start, Hva End)> Ranges { get; } = [];

    public readonly bool VisitTable(Hva firstAddress, Span<ulong> entries, Pfn tablePfn)
    {
        Ranges.Add((firstAddress, firstAddress + ((ulong)entries.Length << Paging.PageShift)));
        return true;
    }
}
