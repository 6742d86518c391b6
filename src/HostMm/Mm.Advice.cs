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
    /// Other advice is refused with <see cref="UnsupportedAdviceException"/> until its mechanism exists.
    /// </summary>
    /// <exception cref="UnmappedRangeException">A page in the range is not mapped.</exception>
    /// <exception cref="UnsupportedAdviceException">PageOut, Mergeable, Unmergeable, HugePage or NoHugePage.</exception>
    public void Madvise(Hva start, ulong length, Advice advice)
    {
        var end = CheckRange(start, length, "madvise");
        switch (advice)
        {
            case Advice.DontNeed:
            case Advice.Free:
                break;
            case Advice.PageOut:
                throw new UnsupportedAdviceException(advice, "reclaim and swap");
            case Advice.Mergeable:
            case Advice.Unmergeable:
                throw new UnsupportedAdviceException(advice, "KSM");
            case Advice.HugePage:
            case Advice.NoHugePage:
                throw new UnsupportedAdviceException(advice, "2 MiB host pages");
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

            if (advice == Advice.DontNeed)
            {
                var gathered = new List<Pfn>();
                ZapRange(start, end, NotifierEvent.Clear, gathered);
                FlushTlb(start, end);
                FreeGathered(gathered);
                return;
            }

            using (Invalidation.Begin(this, start, end, NotifierEvent.Clear))
            {
                var visitor = new LazyFreeVisitor(this);
                _pageTable.Walk(start, end, allocate: false, ref visitor);
            }

            FlushTlb(start, end);
        }
        finally
        {
            _mmapLock.ExitReadLock();
        }
    }
}
