namespace Hypervisor.GuestMmu.Ept;

/// <summary>
/// Shape of the EPT: 4 levels (1 = 4 KiB leaves, 2 = PDE / 2 MiB, 3 = PDPTE / 1 GiB, 4 = PML4E), 512
/// entries per 4 KiB table, 48-bit guest-physical addresses (gfns below 2^36).
/// </summary>
public static class EptGeometry
{
    /// <summary>Levels of the walk; the root table is at this level.</summary>
    public const int RootLevel = 4;

    /// <summary>Entries per table (4 KiB / 8 bytes).</summary>
    public const int EntriesPerTable = 512;

    /// <summary>Bytes per table.</summary>
    public const int TableBytes = EntriesPerTable * sizeof(ulong);

    /// <summary>Bits of the gfn each level indexes.</summary>
    public const int BitsPerLevel = 9;

    /// <summary>Guest-physical address width in bits.</summary>
    public const int GpaBits = 48;

    /// <summary>Exclusive upper bound of every gfn the tables can map: 2^36.</summary>
    public const ulong GfnLimit = 1UL << (GpaBits - Paging.PageShift);

    private const ulong IndexMask = EntriesPerTable - 1;

    /// <summary>The end of the guest-physical space as a gfn (exclusive).</summary>
    public static Gfn End => new(GfnLimit);

    /// <summary>The number of 4 KiB frames one entry at <paramref name="level"/> covers: 1, 512, 2^18 or 2^27.</summary>
    public static ulong FramesPerEntry(int level) => 1UL << (BitsPerLevel * (level - 1));

    /// <summary>The slot of <paramref name="gfn"/> in its table at <paramref name="level"/>.</summary>
    internal static int Slot(ulong gfn, int level) => (int)((gfn >> (BitsPerLevel * (level - 1))) & IndexMask);

    /// <summary><paramref name="gfn"/> rounded down to the first frame of its entry at <paramref name="level"/>.</summary>
    internal static ulong EntryBase(ulong gfn, int level) => gfn & ~(FramesPerEntry(level) - 1);

    /// <summary>Throws unless <paramref name="level"/> is in [<paramref name="min"/>, <paramref name="max"/>].</summary>
    internal static void CheckLevel(int level, int min, int max, string paramName)
    {
        if (level < min || level > max)
        {
            throw new ArgumentOutOfRangeException(
                paramName, level, $"EPT level {level} is out of range: it must be from {min} to {max} (1 = 4 KiB, 2 = 2 MiB, 3 = 1 GiB, 4 = root)");
        }
    }

    /// <summary>Throws unless <paramref name="gfn"/> lies below 2^36 (a 48-bit guest-physical address).</summary>
    internal static void CheckGfn(Gfn gfn, string paramName)
    {
        if (gfn.Value >= GfnLimit)
        {
            throw new ArgumentOutOfRangeException(
                paramName, gfn, $"{gfn} is beyond the guest-physical space: gfns must be below 0x{GfnLimit:x} (48-bit addresses)");
        }
    }

    /// <summary>Throws unless <c>[start, end)</c> is a non-empty range inside the guest-physical space.</summary>
    internal static void CheckRange(Gfn start, Gfn end)
    {
        if (end <= start)
        {
            throw new InvalidRangeException($"gfn range [{start}, {end}) is empty or reversed: end must be above start", nameof(end));
        }

        if (end.Value > GfnLimit)
        {
            throw new InvalidRangeException(
                $"gfn range [{start}, {end}) ends beyond the guest-physical space end {End} (48-bit addresses)", nameof(end));
        }
    }
}
