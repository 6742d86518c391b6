using Hypervisor.HostMm.Frames;

namespace Hypervisor.HostMm.Reclaim;

/// <summary>
/// The multi-gen LRU's tiers (Linux's <c>MAX_NR_TIERS</c>): within a generation, a page accessed N times through
/// references (get-user-pages; Linux's file descriptors) is in tier ⌈log2 N⌉ — tier 0 for N ≤ 1, 1 for N = 2, 2 for
/// N = 3 or 4 — and a page of the workingset (<see cref="FrameFlags.Workingset"/>: promoted by aging, activated at
/// eviction, or refaulted as workingset) is in the top tier. Eviction protects the tiers whose refault rate the
/// <see cref="RefaultController"/> finds too high.
/// </summary>
public static class LruTiers
{
    /// <summary>Tiers per generation (Linux's <c>MAX_NR_TIERS</c>).</summary>
    public const int Count = 4;

    /// <summary>Bits of the reference counter (Linux's <c>LRU_REFS_WIDTH</c>, <c>MAX_NR_TIERS - 2</c>).</summary>
    public const int RefsWidth = 2;

    /// <summary>The most accesses the counter and <see cref="FrameFlags.Accessed"/> record together (4).</summary>
    public const int MaxRefs = 1 << RefsWidth;

    /// <summary>
    /// Accesses through references recorded in <paramref name="flags"/> (Linux's <c>folio_lru_refs</c>): 0 without
    /// <see cref="FrameFlags.Accessed"/>, else the counter plus one (1 to <see cref="MaxRefs"/>).
    /// </summary>
    public static int Refs(FrameFlags flags) => (flags & FrameFlags.Accessed) == 0
        ? 0
        : (int)(((uint)flags & (uint)FrameFlags.LruRefsMask) >> FrameInfo.LruRefsShift) + 1;

    /// <summary>
    /// The tier of a page with <paramref name="refs"/> accesses (Linux's <c>lru_tier_from_refs</c>): the top tier for the
    /// workingset, else ⌈log2 refs⌉ (0 for 0 or 1).
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="refs"/> is outside 0 to <see cref="MaxRefs"/>.</exception>
    public static int TierFromRefs(int refs, bool workingset)
    {
        if ((uint)refs > MaxRefs)
        {
            throw new ArgumentOutOfRangeException(nameof(refs), refs, $"a page records 0 to {MaxRefs} accesses");
        }

        return workingset ? Count - 1 : refs <= 1 ? 0 : 32 - System.Numerics.BitOperations.LeadingZeroCount((uint)refs - 1);
    }

    /// <summary>The tier of a page whose flags are <paramref name="flags"/>.</summary>
    public static int TierOf(FrameFlags flags) => TierFromRefs(Refs(flags), (flags & FrameFlags.Workingset) != 0);

    /// <summary>
    /// True when a page must not be evicted from the oldest generation now (Linux's <c>sort_folio</c> "protected"): its
    /// tier is above <paramref name="tierIndex"/> (<see cref="RefaultController.TierIndex"/>), or it is a workingset page
    /// whose counter is full (protected lazily, whatever the controller says).
    /// </summary>
    public static bool IsProtected(FrameFlags flags, int tierIndex) =>
        TierOf(flags) > tierIndex || IsSaturated(flags);

    /// <summary>A workingset page with every access recorded: protected without counting it to its tier.</summary>
    public static bool IsSaturated(FrameFlags flags) =>
        (flags & FrameFlags.Workingset) != 0 && Refs(flags) == MaxRefs;
}
