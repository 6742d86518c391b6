namespace Hypervisor.Notifier;

/// <summary>
/// A secondary MMU's callbacks (Linux's <c>struct mmu_notifier_ops</c>). Every op is optional: an
/// implementation overrides only what it needs, and the chain calls only the ops a subscriber implements
/// (found once, at registration). Locking: start/end run without any host page-table lock and may block
/// when <see cref="NotifierRange.IsBlockable"/>; the young ops, <see cref="ChangePte"/> and
/// <see cref="InvalidateSecondaryTlbs"/> run under a host page-table lock and must never block.
/// </summary>
public interface IMmuNotifier
{
    /// <summary>
    /// The mm is exiting (or this subscriber is being unregistered while still listed): destroy every
    /// secondary mapping and refuse new ones. Called exactly once per subscription. Frames may be freed
    /// and reused as soon as it returns.
    /// </summary>
    void Release(IMm mm)
    {
    }

    /// <summary>
    /// <c>[range.Start, range.End)</c> is about to change: stop using secondary entries there and create
    /// none until the matching <see cref="InvalidateRangeEnd"/>. Return false only when the range is not
    /// blockable and finishing would need to sleep; a subscriber that can fail must not implement end.
    /// </summary>
    bool InvalidateRangeStart(in NotifierRange range) => true;

    /// <summary>The change announced by the matching start is complete: new secondary entries may be created.</summary>
    void InvalidateRangeEnd(in NotifierRange range)
    {
    }

    /// <summary>Test and clear the accessed bit of secondary entries in <c>[start, end)</c> and flush; true if any was young.</summary>
    bool ClearFlushYoung(IMm mm, Hva start, Hva end) => false;

    /// <summary>Test and clear the accessed bit of secondary entries in <c>[start, end)</c>, flush optional; true if any was young.</summary>
    bool ClearYoung(IMm mm, Hva start, Hva end) => false;

    /// <summary>
    /// <see cref="ClearYoung"/> over <c>[start, end)</c> (page-aligned) answering per page, for a page-table walk that
    /// ages a whole PTE table with one call: sets bit <c>i</c> of <paramref name="young"/> (at least one bit per page)
    /// when the page at <c>start + i × 4096</c> was young, and leaves the other bits as they are. The default asks
    /// <see cref="ClearYoung"/> one page at a time; a secondary MMU overrides it to age the range in one pass.
    /// </summary>
    void ClearYoungBitmap(IMm mm, Hva start, Hva end, Span<ulong> young)
    {
        var pages = (int)((end - start) >> Paging.PageShift);
        for (var i = 0; i < pages; i++)
        {
            var page = start + ((ulong)i << Paging.PageShift);
            if (ClearYoung(mm, page, page + Paging.PageSize))
            {
                young[i >> 6] |= 1UL << (i & 63);
            }
        }
    }

    /// <summary>
    /// <see cref="ClearFlushYoung"/> over <c>[start, end)</c> (page-aligned) answering per page, for the classic LRU's
    /// batched aging of one PTE table's run: sets bit <c>i</c> of <paramref name="young"/> (at least one bit per page)
    /// when the page at <c>start + i × 4096</c> was young, leaves the other bits as they are, and flushes whatever it
    /// cleared before returning. The default asks <see cref="ClearFlushYoung"/> one page at a time; a secondary MMU
    /// overrides it to age the range in one pass with one flush.
    /// </summary>
    void ClearFlushYoungBitmap(IMm mm, Hva start, Hva end, Span<ulong> young)
    {
        var pages = (int)((end - start) >> Paging.PageShift);
        for (var i = 0; i < pages; i++)
        {
            var page = start + ((ulong)i << Paging.PageShift);
            if (ClearFlushYoung(mm, page, page + Paging.PageSize))
            {
                young[i >> 6] |= 1UL << (i & 63);
            }
        }
    }

    /// <summary>Report whether the secondary entry for <paramref name="address"/> is young, without clearing it.</summary>
    bool TestYoung(IMm mm, Hva address) => false;

    /// <summary>
    /// Historical (Linux 2.6.32–6.9): the host PTE at <paramref name="address"/> now holds <paramref name="pte"/>
    /// (KSM merge, COW). Called only when the host's legacy change_pte option is on.
    /// </summary>
    void ChangePte(IMm mm, Hva address, HostPte pte)
    {
    }

    /// <summary>
    /// Flush a device TLB that caches the host's own page tables (IOMMU SVA style), called from the host's
    /// TLB flush. A subscriber implementing this may not implement start or end.
    /// </summary>
    void InvalidateSecondaryTlbs(IMm mm, Hva start, Hva end)
    {
    }
}
