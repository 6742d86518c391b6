namespace Hypervisor.HostMm.Swap;

/// <summary>
/// What an evicted page leaves in its swap-cache slot (Linux's workingset shadow): the LRU vector it was evicted
/// from, that vector's workingset clock at the eviction, and whether it was part of the workingset. On a refault
/// the clock's advance since then is the refault distance.
/// </summary>
/// <remarks>Encoding (bit 0 always clear, bit 1 always set so a shadow is never 0): bit 2 workingset, bits 3–23 the
/// lruvec index, bits 24–63 the clock (40 bits, compared modulo 2^40). Under the multi-gen LRU the 40 bits are
/// Linux's token instead: the oldest generation's sequence number at the eviction (bits 26–63) and the page's
/// accesses through references minus one (bits 24–25), so a refault finds its tier.</remarks>
internal static class ShadowEntry
{
    private const int LruvecShift = 3;
    private const int AgeShift = 24;
    private const ulong LruvecMask = (1UL << (AgeShift - LruvecShift)) - 1;
    private const ulong AgeMask = (1UL << (64 - AgeShift)) - 1;

    /// <summary>The most lruvecs a shadow can name.</summary>
    public const int MaxLruvecs = (int)LruvecMask + 1;

    /// <summary>A shadow for a page evicted from lruvec <paramref name="lruvec"/> when its clock read <paramref name="age"/>.</summary>
    public static ulong Make(int lruvec, long age, bool workingset) =>
        2UL | (workingset ? 4UL : 0) | (((ulong)lruvec & LruvecMask) << LruvecShift) | (((ulong)age & AgeMask) << AgeShift);

    /// <summary>
    /// A multi-gen shadow (Linux's <c>lru_gen_eviction</c>): evicted from lruvec <paramref name="lruvec"/> while its
    /// oldest generation was <paramref name="minSeq"/>, with <paramref name="refs"/> accesses (0 to 4) recorded.
    /// </summary>
    public static ulong MakeGenerational(int lruvec, long minSeq, int refs, bool workingset)
    {
        var token = ((ulong)minSeq << Reclaim.LruTiers.RefsWidth) | (uint)Math.Max(refs - 1, 0);
        return 2UL | (workingset ? 4UL : 0) | (((ulong)lruvec & LruvecMask) << LruvecShift) | ((token & AgeMask) << AgeShift);
    }

    /// <summary>The sequence number a multi-gen shadow recorded (modulo 2^38).</summary>
    public static long SequenceOf(ulong shadow) => (long)(shadow >> (AgeShift + Reclaim.LruTiers.RefsWidth));

    /// <summary>The accesses a multi-gen shadow recorded (1 to 4; an eviction with none records one).</summary>
    public static int RefsOf(ulong shadow) => (int)((shadow >> AgeShift) & ((1UL << Reclaim.LruTiers.RefsWidth) - 1)) + 1;

    /// <summary>
    /// True when a multi-gen shadow is recent (Linux's <c>lru_gen_test_recent</c>): the lruvec's youngest generation
    /// <paramref name="maxSeq"/> is fewer than <paramref name="generations"/> sequence numbers from the recorded one.
    /// </summary>
    public static bool IsRecentGeneration(ulong shadow, long maxSeq, int generations)
    {
        const ulong seqMask = AgeMask >> Reclaim.LruTiers.RefsWidth;
        var recorded = (ulong)SequenceOf(shadow) & seqMask;
        var now = (ulong)maxSeq & seqMask;
        var distance = now >= recorded ? now - recorded : recorded - now;
        return distance < (ulong)generations;
    }

    /// <summary>The lruvec index a shadow names.</summary>
    public static int LruvecOf(ulong shadow) => (int)((shadow >> LruvecShift) & LruvecMask);

    /// <summary>True when the evicted page was part of the workingset.</summary>
    public static bool WasWorkingset(ulong shadow) => (shadow & 4) != 0;

    /// <summary>How far the clock moved from the shadow's reading to <paramref name="now"/> (modulo 2^40).</summary>
    public static long Distance(ulong shadow, long now) => (long)(((ulong)now - (shadow >> AgeShift)) & AgeMask);
}
