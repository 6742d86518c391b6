using Hypervisor.HostMm.PageTables;

namespace Hypervisor.HostMm;

/// <summary>
/// MADV_COLD/PAGEOUT's walk (Linux's <c>madvise_cold_or_pageout_pte_range</c>): every present page mapped only here
/// (not shared after fork, not the zero page) gets an old PTE — with no notifier, so secondary accessed bits are left
/// alone — and is collected with a reference for the caller.
/// </summary>
internal struct ColdPageCollector(Mm mm, List<Pfn> pages) : IPteVisitor
{
    public bool VisitTable(Hva firstAddress, Span<ulong> entries, Pfn tablePfn)
    {
        var memory = mm.Host.Memory;
        for (var i = 0; i < entries.Length; i++)
        {
            var pte = new HostPte(entries[i]);
            if (!pte.IsPresent || pte.Pfn == mm.Host.ZeroPfn || memory.Frame(pte.Pfn).MapCount != 1)
            {
                continue;
            }

            if (pte.IsAccessed)
            {
                entries[i] = pte.Without(HostPte.AccessedBit).Value;
            }

            memory.Get(pte.Pfn);
            pages.Add(pte.Pfn);
        }

        return true;
    }
}
