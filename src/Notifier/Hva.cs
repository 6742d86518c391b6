using System.Globalization;

namespace Hypervisor.Notifier;

/// <summary>A host virtual address: an address inside a host process (<see cref="IMm"/>).</summary>
/// <param name="Value">The raw 64-bit address.</param>
public readonly record struct Hva(ulong Value) : IComparable<Hva>
{
    /// <summary>The lowest address.</summary>
    public static Hva Zero => default;

    /// <summary>
    /// Exclusive end of every host address space (2^57, the 5-level paging limit). Ranges that mean
    /// "the whole mm" (exit, release) are <c>[Zero, AddressSpaceEnd)</c>.
    /// </summary>
    public static Hva AddressSpaceEnd => new(1UL << 57);

    /// <summary>The address rounded down to its page boundary.</summary>
    public Hva PageAligned => new(Value & ~Paging.PageOffsetMask);

    /// <summary>The address rounded up to the next page boundary (itself when aligned).</summary>
    public Hva PageAlignedUp => new((Value + Paging.PageOffsetMask) & ~Paging.PageOffsetMask);

    /// <summary>True when the address is a multiple of the page size.</summary>
    public bool IsPageAligned => Paging.IsPageAligned(Value);

    /// <summary>Offset of the address inside its page.</summary>
    public ulong PageOffset => Value & Paging.PageOffsetMask;

    /// <summary>The virtual page number (address / page size).</summary>
    public ulong PageNumber => Value >> Paging.PageShift;

    /// <summary>The address <paramref name="bytes"/> further on.</summary>
    public static Hva operator +(Hva address, ulong bytes) => new(address.Value + bytes);

    /// <summary>The address <paramref name="bytes"/> lower.</summary>
    public static Hva operator -(Hva address, ulong bytes) => new(address.Value - bytes);

    /// <summary>The distance in bytes from <paramref name="start"/> to <paramref name="end"/>.</summary>
    public static ulong operator -(Hva end, Hva start) => end.Value - start.Value;

    /// <summary>Address order.</summary>
    public static bool operator <(Hva left, Hva right) => left.Value < right.Value;

    /// <summary>Address order.</summary>
    public static bool operator >(Hva left, Hva right) => left.Value > right.Value;

    /// <summary>Address order.</summary>
    public static bool operator <=(Hva left, Hva right) => left.Value <= right.Value;

    /// <summary>Address order.</summary>
    public static bool operator >=(Hva left, Hva right) => left.Value >= right.Value;

    /// <inheritdoc />
    public int CompareTo(Hva other) => Value.CompareTo(other.Value);

    /// <summary>Hex form, as Linux prints addresses.</summary>
    public override string ToString() => "0x" + Value.ToString("x", CultureInfo.InvariantCulture);
}
