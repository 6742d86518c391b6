using Hypervisor.HostMm.PageTables;

namespace Hypervisor.HostMm;

/// <summary>mremap's PTE mover: traces each move and flushes the old chunk's TLB before the page-table locks drop.</summary>
internal struct MoveVisitor : IPteMoveVisitor
{
    private readonly Mm _mm;
    private readonly bool _traced;

    public MoveVisitor(Mm mm)
    {
        _mm = mm;
        _traced = mm.Host.Trace is not null;
        MovedCount = 0;
    }

    /// <summary>PTEs moved.</summary>
    public long MovedCount { get; private set; }

    public void Moved(Hva from, Hva to, HostPte pte)
    {
        MovedCount++;
        if (_traced)
        {
            _mm.TracePte(from, pte, HostPte.None);
            _mm.TracePte(to, HostPte.None, pte);
        }
    }

    public void BeforeUnlock(Hva fromStart, Hva fromEnd) => _mm.FlushTlb(fromStart, fromEnd);
}
