using Hypervisor.HostMm.PageTables;

namespace Hypervisor.HostMm;

/// <summary>Visits nothing: a walk with <c>allocate: true</c> and this visitor just builds the tables.</summary>
internal readonly struct NoOpVisitor : IPteVisitor
{
    public bool VisitTable(Hva firstAddress, Span<ulong> entries, Pfn tablePfn) => true;
}
