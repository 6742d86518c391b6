namespace Hypervisor.HostMm;

/// <summary>madvise.</summary>
public sealed partial class Mm
{
    /// <summary>
    /// Gives the host advice about <c>[start, start + length)</c>, which must be fully mapped (<c>madvise</c>,
    /// under the mmap lock for read as in Linux).
    /// <see cref="Advice.DontNeed"/> (§3 zap_page_range_single): start (Clear) → PTEs cleared → end → TLB flush
    /// → frames freed; later reads see zeroes.
    /// <see cref="Advice.Free"/> (§3 MADV_FREE): start (Clear) → exclusively owned pages made old and clean
    /// and marked lazily freeable → end → TLB flush; nothing is freed now.
    /// <see cref="Advice.Cold"/> and <see cref="Advice.PageOut"/> (§3 MADV_COLD/PAGEOUT): the exclusively owned
    /// present pages' accessed bits are cleared with no notifier (secondary accessed bits are not consulted), then COLD
    /// moves them to the inactive list and PAGEOUT reclaims them now, ignoring references: each goes through the
    /// swap-out row's order (start (Clear) → swap PTE → flush → end → write → free).
    /// <see cref="Advice.HugePage"/> and <see cref="Advice.NoHugePage"/>: the VMA flags transparent huge pages follow (see
    /// <c>MadviseHuge</c>), under the mmap lock for write.
    /// <see cref="Advice.Mergeable"/> and <see cref="Advice.Unmergeable"/>: KSM (see <c>MadviseKsm</c>), under the mmap lock for write.
    /// </summary>
    /// <exception cref="UnmappedRangeException">A page in the range is not mapped.</exception>

    public void Madvise(Hva start, ulong length, Advice advice)
    {
        var end = CheckRange(start, length, "madvise");
        switch (advice)
        {
            case Advice.DontNeed:
            case Advice.Free:
            case Advice.PageOut:
            case Advice.Cold:
                break;
            case Advice.Mergeable:
            case Advice.Unmergeable:
                MadviseKsm(start, end, advice);
                return;
            case Advice.HugePage:
            case Advice.NoHugePage:
                MadviseHuge(start, end, advice);
                return;
            default:
                throw new ArgumentOutOfRangeException(nameof(advice), advice, "not an Advice value");
        }

        EnterRead("madvise");
        try
        {
            Interlocked.Increment(ref _madviseCalls);
            if (!_vmas.IsFullyMapped(start, end))
            {
                throw new UnmappedRangeException(HostMmRule.RangeNotFullyMapped, Id, start, end, $"madvise {advice}");
            }

            if (advice is not Advice.DontNeed)
            {
                SplitHugePmds(start, end); // the zap of DONTNEED frees whole leaves itself
            }

            if (advice is Advice.PageOut or Advice.Cold)
            {
                var pages = new List<Pfn>();
                var collector = new ColdPageCollector(this, pages);
                _pageTable.Walk(start, end, allocate: false, ref collector);
                Host.Reclaim.AdviseCold(pages, pageOut: advice == Advice.PageOut);
                return;
            }

            if (advice == Advice.DontNeed)
            {
                var gather = new TlbGather();
                ZapRange(start, end, NotifierEvent.Clear, gather);
                FlushTlb(start, end);
                gather.Finish(this);
                return;
            }

            var lazy = new TlbGather();
            using (Invalidation.Begin(this, start, end, NotifierEvent.Clear))
            {
                var visitor = new LazyFreeVisitor(this, lazy.SwapSlots);
                _pageTable.Walk(start, end, allocate: false, ref visitor);
            }

            FlushTlb(start, end);
            AddSwapEntries(-lazy.SwapSlots.Count);
            lazy.Finish(this);
        }
        finally
        {
            _mmapLock.ExitReadLock();
        }
    }
}
