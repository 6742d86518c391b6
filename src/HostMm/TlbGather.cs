using Hypervisor.HostMm.Frames;

namespace Hypervisor.HostMm;

/// <summary>
/// What a zap collects to release after the TLB flush (Linux's <c>mmu_gather</c>): the frames whose mapping
/// references it dropped from the page tables (and emptied page-table frames), and the swap slots whose entries it
/// cleared. <see cref="Finish"/> releases them, once, after the caller flushed the TLB — so no frame a CPU or secondary
/// TLB could still reach is freed before the flush, and no swap slot is freed under a page-table lock.
/// </summary>
internal sealed class TlbGather
{
    /// <summary>Frames to release (one reference each), page-table frames included.</summary>
    public List<Pfn> Pages { get; } = [];

    /// <summary>Swap slots whose entries were cleared (one reference each).</summary>
    public List<ulong> SwapSlots { get; } = [];

    // NotifierEra.NoRangeStartEnd only (null otherwise): the zap's post-change invalidates, sent after the frees.
    private List<NotifierRange>? _postChange;

    /// <summary>
    /// Under <see cref="NotifierEra.NoRangeStartEnd"/>: keeps the zap's post-change invalidate for <see cref="Finish"/>
    /// to send once the frames are freed (the 2008 designs announced a zap after <c>tlb_finish_mmu</c>).
    /// </summary>
    public void DeferPostChangeInvalidate(in NotifierRange range) => (_postChange ??= []).Add(range);

    /// <summary>
    /// Releases everything gathered (Linux's <c>tlb_finish_mmu</c> with <c>free_pages_and_swap_cache</c>): an unmapped
    /// swap-cache page whose slot no PTE names any more leaves the cache, then the references go; then the swap slots'
    /// references go. Call after the TLB flush.
    /// </summary>
    public void Finish(Mm mm)
    {
        var reclaim = mm.Host.Reclaim;
        var memory = mm.Host.Memory;
        foreach (var pfn in Pages)
        {
            if (memory.Frame(pfn).Has(FrameFlags.SwapCache))
            {
                reclaim.FreeIdleSwapCache(pfn);
            }
        }

        mm.FreeGathered(Pages);
        foreach (var slot in SwapSlots)
        {
            reclaim.FreeSwapEntry(slot);
        }

        SwapSlots.Clear();
        if (_postChange is { } ranges)
        {
            _postChange = null;
            foreach (var pending in ranges)
            {
                var range = pending;
                mm.Notifiers.InvalidateRange(ref range);
            }
        }
    }
}
