namespace Hypervisor.GuestMmu.Ept;

/// <summary>
/// The step every EPT walk takes from an entry to the table below it, shared by <see cref="TdpIterator"/>
/// (range walks) and <see cref="TdpPointWalk"/> (one gfn's path), so the rule for what may be entered is
/// written once: only a present non-leaf, read (volatile) just before it is followed.
/// </summary>
internal static unsafe class TdpStep // unsafe: table memory is native and addressed by pointer.
{
    /// <summary>True when <paramref name="entry"/> at <paramref name="level"/> links a table: present, above level 1, and not a large leaf (the root level has none).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool IsPresentNonLeaf(ulong entry, int level) =>
        (entry & Spte.MmuPresentBit) != 0 && level > 1 && (level == EptGeometry.RootLevel || (entry & Spte.LargePageBit) == 0);

    /// <summary>True when <paramref name="entry"/> at <paramref name="level"/> is a present leaf: any present level-1 entry, or a large one at 2 or 3.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool IsLeafAt(ulong entry, int level) =>
        (entry & Spte.MmuPresentBit) != 0 && (level == 1 || (level < EptGeometry.RootLevel && (entry & Spte.LargePageBit) != 0));

    /// <summary>The arena index of the table a non-leaf <paramref name="entry"/> links.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static uint TableIndexOf(ulong entry) => (uint)((entry & Spte.PfnMask) >> Spte.PfnShift);

    /// <summary>
    /// The step down: the table <paramref name="entry"/> (just read at <paramref name="level"/>, above the
    /// walk's minimum and so above 1) links, or null when it links none (not present, frozen, or a large
    /// leaf). Callers pass the value they read immediately before, never an older one, so a table unlinked
    /// meanwhile is not entered.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong* Down(EptArena arena, ulong entry, int level) =>
        (entry & Spte.MmuPresentBit) != 0 && (level == EptGeometry.RootLevel || (entry & Spte.LargePageBit) == 0)
            ? arena.TablePointer(TableIndexOf(entry))
            : null;
}
