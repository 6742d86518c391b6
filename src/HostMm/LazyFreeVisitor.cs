using Hypervisor.HostMm.Frames;
using Hypervisor.HostMm.PageTables;

namespace Hypervisor.HostMm;

/// <summary>
/// MADV_FREE's walk (Linux's <c>madvise_free_pte_range</c>): every present, exclusively owned page gets an
/// old, clean PTE and loses <see cref="FrameFlags.SwapBacked"/> and <see cref="FrameFlags.Dirty"/>, which
/// marks it lazily freeable: reclaim may drop it while it stays clean, and a write makes it dirty again.
/// Shared pages (and the zero page) are left alone. A swap entry is cleared and its slot gathered for release
/// after the walk: the page's contents are no longer wanted.
/// </summary>
internal struct LazyFreeVisitor : PageTables.IPteVisitor
{
    private readonly Mm _mm;
    private readonly HostMemory _memory;
    private readonly Pfn _zeroPfn;
    private readonly bool _traced;
    private readonly List<ulong> _swapSlots;

    public LazyFreeVisitor(Mm mm, List<ulong> swapSlots)
    {
        _swapSlots = swapSlots;
        _mm = mm;
        _memory = mm.Host.Memory;
        _zeroPfn = mm.Host.ZeroPfn;
        _traced = mm.Host.Trace is not null;
    }

    public bool VisitTable(Hva firstAddress, Span<ulong> entries, Pfn tablePfn)
    {
        for (var i = 0; i < entries.Length; i++)
        {
            var pte = new HostPte(entries[i]);
            if (!pte.IsPresent && !pte.IsNone && HostPteEncoding.Classify(pte) == HostPteKind.Swap)
            {
                entries[i] = 0;
                _swapSlots.Add(HostPteEncoding.SwapSlotOf(pte));
                if (_traced)
                {
                    _mm.TracePte(firstAddress + ((ulong)i << Paging.PageShift), pte, HostPte.None);
                }

                continue;
            }

            if (!pte.IsPresent || pte.Pfn == _zeroPfn || _memory.Frame(pte.Pfn).MapCount != 1 || _memory.Frame(pte.Pfn).Has(FrameFlags.Ksm))
            {
                continue;
            }

            var clean = pte.Without(HostPte.AccessedBit | HostPte.DirtyBit);
            _memory.ClearFlags(pte.Pfn, FrameFlags.SwapBacked | FrameFlags.Dirty);
            if (clean == pte)
            {
                continue;
            }

            entries[i] = clean.Value;
            if (_traced)
            {
                _mm.TracePte(firstAddress + ((ulong)i << Paging.PageShift), pte, clean);
            }
        }

        return true;
    }
}
