using Hypervisor.HostMm.Frames;
using Hypervisor.HostMm.PageTables;

namespace Hypervisor.HostMm.Ksm;

/// <summary>The KSM audit's page-table walk of one process: KSM PTEs must be read-only; KSM-placed zero pages are counted.</summary>
internal struct KsmPteAuditor(Mm mm, List<string> violations) : IPteVisitor
{
    /// <summary>Present PTEs that map the zero page with the dirty bit (KSM-placed).</summary>
    public long ZeroPages { get; private set; }

    public bool VisitTable(Hva firstAddress, Span<ulong> entries, Pfn tablePfn)
    {
        var memory = mm.Host.Memory;
        var zero = mm.Host.ZeroPfn;
        for (var i = 0; i < entries.Length; i++)
        {
            var pte = new HostPte(entries[i]);
            var kind = HostPteEncoding.Classify(pte);
            if (kind == HostPteKind.ProtNone && HostPteEncoding.ProtNonePfn(pte) == zero && pte.IsDirty)
            {
                ZeroPages++;
            }

            if (kind != HostPteKind.Present)
            {
                continue;
            }

            if (pte.Pfn == zero)
            {
                if (pte.IsDirty)
                {
                    ZeroPages++;
                }

                continue;
            }

            if (pte.IsWritable && memory.Frame(pte.Pfn).Has(FrameFlags.Ksm))
            {
                violations.Add($"{mm}: KSM page {pte.Pfn} is mapped writable at {firstAddress + ((ulong)i << Paging.PageShift)}");
            }
        }

        return true;
    }
}
