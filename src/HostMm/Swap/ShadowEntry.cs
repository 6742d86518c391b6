namespace Hypervisor.HostMm.Swap;

/// <summary>
/// What an evicted page leaves in its swap-cache slot (Linux's workingset shadow): the LRU vector it was evicted
/// from, that vector's workingset clock at the eviction, and whether it was part of the workingset. On a refault
/// the clock's advance since then is the refault distance.
/// </summary>
/// <remarks>Encoding (bit 0 always clear, bit 1 always set so a shadow is never 0): bit 2 workingset, bits 3–23 the
/// lruvec index, bits 24–63 the clock (40 bits, compared modulo 2^40).</remarks>
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

    /// <summary>The lruvec index a shadow names.</summary>
    public static int LruvecOf(ulong shadow) => (int)((shadow >> LruvecShift) & LruvecMask);

    /// <summary>True when the evicted page was part of the workingset.</summary>
    public static bool WasWorkingset(ulong shadow) => (shadow & 4) != 0;

    /// <summary>How far the clock moved from the shadow's reading to <paramref name="now"/> (modulo 2^40).</summary>
    public static long Distance(ulong shadow, long now) => (long)(((ulong)now - (shadow >> AgeShift)) & AgeMask);
}
