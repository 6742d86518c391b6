namespace Hypervisor.HostMm.Reclaim;

/// <summary>
/// The multi-gen LRU's feedback loop on refaults, one per lruvec (Linux's PID controller in <c>mm/vmscan.c</c>): per
/// tier it counts the pages evicted, protected and refaulted in the generation being evicted, and keeps an average of
/// earlier generations (smoothing factor 1/2, carried over whenever the oldest generation is retired). The set point is
/// tier 0's refault rate; a higher tier whose rate exceeds it (by the gains' margin, 3:2) is protected from eviction.
/// </summary>
/// <remarks>
/// Counters are updated with atomics (evictions and refaults happen outside the LRU lock); the carry-over runs under
/// <see cref="Lruvec.Lock"/>. A reading may mix counts from just before and after a carry-over: the controller only
/// steers, as Linux's does.
/// </remarks>
public sealed class RefaultController
{
    /// <summary>Refaults below which a tier is never protected (Linux's <c>MIN_LRU_BATCH</c>, <c>BITS_PER_LONG</c>).</summary>
    public const int MinBatch = 64;

    /// <summary>The set point's gain (tier 0).</summary>
    public const int SetPointGain = 2;

    /// <summary>The process variable's gain (every other tier).</summary>
    public const int ProcessGain = 3;

    private readonly long[] _evicted = new long[LruTiers.Count];
    private readonly long[] _refaulted = new long[LruTiers.Count];
    private readonly long[] _protected = new long[LruTiers.Count];
    private readonly long[] _averageRefaulted = new long[LruTiers.Count];
    private readonly long[] _averageTotal = new long[LruTiers.Count];

    /// <summary>Pages of <paramref name="tier"/> evicted from the current oldest generation.</summary>
    public long Evicted(int tier) => Volatile.Read(ref _evicted[tier]);

    /// <summary>Refaults counted for <paramref name="tier"/> since the current oldest generation became the oldest.</summary>
    public long Refaulted(int tier) => Volatile.Read(ref _refaulted[tier]);

    /// <summary>Pages of <paramref name="tier"/> eviction protected in the current oldest generation.</summary>
    public long Protected(int tier) => Volatile.Read(ref _protected[tier]);

    /// <summary>The moving average of <paramref name="tier"/>'s refaults over earlier generations.</summary>
    public long AverageRefaulted(int tier) => Volatile.Read(ref _averageRefaulted[tier]);

    /// <summary>The moving average of <paramref name="tier"/>'s evicted plus protected pages over earlier generations.</summary>
    public long AverageTotal(int tier) => Volatile.Read(ref _averageTotal[tier]);

    /// <summary>Counts one page of <paramref name="tier"/> evicted (Linux's <c>lru_gen_eviction</c>).</summary>
    public void CountEvicted(int tier) => Interlocked.Increment(ref _evicted[tier]);

    /// <summary>Counts one recent refault of a page evicted from <paramref name="tier"/> (Linux's <c>lru_gen_refault</c>).</summary>
    public void CountRefaulted(int tier) => Interlocked.Increment(ref _refaulted[tier]);

    /// <summary>Counts one page of <paramref name="tier"/> protected from eviction (Linux's <c>sort_folio</c>).</summary>
    public void CountProtected(int tier) => Interlocked.Increment(ref _protected[tier]);

    /// <summary>
    /// The oldest generation was retired (Linux's <c>reset_ctrl_pos</c> with carry-over): each tier's averages become
    /// the mean of the old average and the counts of the generation just ended, and the counts restart at 0. Hold
    /// <see cref="Lruvec.Lock"/>.
    /// </summary>
    public void CarryOver()
    {
        for (var tier = 0; tier < LruTiers.Count; tier++)
        {
            var refaulted = Interlocked.Exchange(ref _refaulted[tier], 0);
            var total = Interlocked.Exchange(ref _evicted[tier], 0) + Interlocked.Exchange(ref _protected[tier], 0);
            Volatile.Write(ref _averageRefaulted[tier], (_averageRefaulted[tier] + refaulted) / 2);
            Volatile.Write(ref _averageTotal[tier], (_averageTotal[tier] + total) / 2);
        }
    }

    /// <summary>Tier <paramref name="tier"/>'s position (Linux's <c>read_ctrl_pos</c>): the averages plus the current counts.</summary>
    public ControlPosition Position(int tier, int gain) => new(
        AverageRefaulted(tier) + Refaulted(tier),
        AverageTotal(tier) + Protected(tier) + Evicted(tier),
        gain);

    /// <summary>
    /// The highest tier eviction may still evict from (Linux's <c>get_tier_idx</c>): tiers 1, 2, … are compared with
    /// tier 0 in turn, and the first whose refault rate is too high stops the search; every tier above the result is
    /// protected. <see cref="LruTiers.Count"/> − 1 when no tier needs protection.
    /// </summary>
    public int TierIndex()
    {
        var setPoint = Position(0, SetPointGain);
        var tier = 1;
        for (; tier < LruTiers.Count; tier++)
        {
            if (!PositiveError(setPoint, Position(tier, ProcessGain)))
            {
                break;
            }
        }

        return tier - 1;
    }

    /// <summary>
    /// True when <paramref name="processVariable"/> needs no protection (Linux's <c>positive_ctrl_err</c>): it has fewer
    /// than <see cref="MinBatch"/> refaults, or its refault rate, weighted by its gain, is at most the set point's
    /// (whose rate is taken as (refaulted + 1) / (total + <see cref="MinBatch"/>) so an empty set point is not zero).
    /// </summary>
    public static bool PositiveError(ControlPosition setPoint, ControlPosition processVariable) =>
        processVariable.Refaulted < MinBatch
        || (Int128)processVariable.Refaulted * (setPoint.Total + MinBatch) * setPoint.Gain
            <= (Int128)(setPoint.Refaulted + 1) * processVariable.Total * processVariable.Gain;
}
