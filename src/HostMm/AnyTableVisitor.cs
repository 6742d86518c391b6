using Hypervisor.HostMm.PageTables;

namespace Hypervisor.HostMm;

/// <summary>Stops at the first PTE table the walk finds: "is anything populated in this range?".</summary>
internal struct AnyTableVisitor : IPteVisitor
{
    /// <summary>True once a PTE table was found.</summary>
    public bool Found { get; private set; }

    public bool VisitTable(Hva firstAddress, Span<ulong> entries, Pfn tablePfn)
    {
        Found = true;
        return false;
    }
}
