using Hypervisor.HostMm.Frames;
using Hypervisor.HostMm.PageTables;

namespace Hypervisor.HostMm;

/// <summary>
/// Clears every PTE it visits (Linux's <c>zap_pte_range</c>): drops the mapping count, moves the PTE's dirty
/// bit to the frame and gathers the frame so the caller frees it after the TLB flush. Runs under each PTE
/// table's lock; allocates nothing per page.
/// </summary>
internal struct ZapVisitor : IPteVisitor
{
    private readonly Mm _mm;
    private readonly HostMemory _memory;
    private readonly List<Pfn> _gathered;
    private readonly List<ulong> _swapSlots;
    private readonly Pfn _zeroPfn;
    private readonly bool _traced;

    public ZapVisitor(Mm mm, List<Pfn> gathered, List<ulong> swapSlots)
    {
        _mm = mm;
        _memory = mm.Host.Memory;
        _gathered = gathered;
        _swapSlots = swapSlots;
        _zeroPfn = mm.Host.ZeroPfn;
        _traced = mm.Host.Trace is not null;
        Zapped = 0;
        Resident = 0;
        SwapEntries = 0;
        KsmZeroPages = 0;
    }

    /// <summary>PTEs cleared.</summary>
    public long Zapped { get; private set; }

    /// <summary>Of those, mappings that counted in RSS.</summary>
    public long Resident { get; private set; }

    /// <summary>Swap entries cleared; their slots are in the swap list, freed by the caller after the walk.</summary>
    public long SwapEntries { get; private set; }

    /// <summary>Of the cleared PTEs, those that mapped a KSM-placed zero page (dirty zero-page PTEs).</summary>
    public long KsmZeroPages { get; private set; }

    public bool VisitTable(Hva firstAddress, Span<ulong> entries, Pfn tablePfn)
    {
        for (var i = 0; i < entries.Length; i++)
        {
            var raw = entries[i];
            if (raw == 0)
            {
                continue;
            }

            entries[i] = 0;
            var pte = new HostPte(raw);
            if (_traced)
            {
                _mm.TracePte(firstAddress + ((ulong)i << Paging.PageShift), pte, HostPte.None);
            }

            Zapped++;
            var kind = HostPteEncoding.Classify(pte);
            if (kind == HostPteKind.Swap)
            {
                // free_swap_and_cache may discard device data: done after the walk, outside the page-table lock.
                _swapSlots.Add(HostPteEncoding.SwapSlotOf(pte));
                SwapEntries++;
                continue;
            }

            if (kind == HostPteKind.Migration)
            {
                // The migration already dropped this mapping's mapcount and reference; the entry still counted in RSS
                // (Linux's zap_nonpresent_ptes). Its remove_migration_ptes will find nothing here.
                Resident++;
                continue;
            }

            var pfn = kind == HostPteKind.Present ? pte.Pfn : HostPteEncoding.ProtNonePfn(pte);

            if (pfn == _zeroPfn)
            {
                if (pte.IsDirty)
                {
                    KsmZeroPages++; // present or PROT_NONE: the dirty bit survives mprotect
                }

                continue;
            }

            // The PTE's dirty bit moves to the frame only while the frame outlives this mapping in a way that
            // matters (another mapping, or the swap cache); a frame about to be freed needs no dirty state.
            var remaining = _memory.DecrementMapCount(pfn);
            if (pte.IsDirty && (remaining != 0 || _memory.Frame(pfn).Has(FrameFlags.SwapCache)))
            {
                _memory.SetFlags(pfn, FrameFlags.Dirty);
            }
            _gathered.Add(pfn);
            Resident++;
        }

        return true;
    }
}
