using Hypervisor.HostMm.Frames;

namespace Hypervisor.HostMm.PageTables;

/// <summary>
/// Counts the frames a range maps per NUMA node for <see cref="Mm.ResidentPagesPerNode"/>: present and PROT_NONE (NUMA
/// hinting) entries by the node of the frame they map; the shared zero page, swap and migration entries not at all.
/// </summary>
/// <remarks>Runs under each PTE table's lock: it only reads entries and the frame table's node arithmetic.</remarks>
internal readonly struct NodeCountingVisitor : IPteVisitor
{
    private readonly HostMemory _memory;
    private readonly Pfn _zeroPfn;
    private readonly long[] _pages;

    /// <summary>Creates a visitor that adds into <paramref name="pages"/> (one element per node of <paramref name="memory"/>).</summary>
    public NodeCountingVisitor(HostMemory memory, Pfn zeroPfn, long[] pages)
    {
        _memory = memory;
        _zeroPfn = zeroPfn;
        _pages = pages;
    }

    /// <inheritdoc />
    public bool VisitTable(Hva firstAddress, Span<ulong> entries, Pfn tablePfn)
    {
        foreach (var value in entries)
        {
            if (value == 0)
            {
                continue;
            }

            var pte = new HostPte(value);
            var kind = HostPteEncoding.Classify(pte);
            if ((kind == HostPteKind.Present || kind == HostPteKind.ProtNone) && pte.Pfn != _zeroPfn)
            {
                _pages[_memory.NodeOf(pte.Pfn)]++;
            }
        }

        return true;
    }
}
