using System.Globalization;

namespace Hypervisor.GuestMmu.Addresses;

/// <summary>A guest-physical address: what the guest believes is RAM, translated to host memory through memslots and EPT.</summary>
/// <param name="Value">The raw 64-bit address.</param>
public readonly record struct Gpa(ulong Value) : IComparable<Gpa>
{
    /// <summary>The guest frame that contains the address.</summary>
    public Gfn Gfn => new(Value >> Paging.PageShift);

    /// <summary>The address rounded down to its page boundary.</summary>
    public Gpa PageAligned => new(Value & ~Paging.PageOffsetMask);

    /// <summary>True when the address is a multiple of the page size.</summary>
    public bool IsPageAligned => Paging.IsPageAligned(Value);

    /// <summary>Offset of the address inside its page.</summary>
    public ulong PageOffset => Value & Paging.PageOffsetMask;

    /// <summary>The address <paramref name="bytes"/> further on.</summary>
    public static Gpa operator +(Gpa address, ulong bytes) => new(address.Value + bytes);

    /// <summary>The distance in bytes from <paramref name="start"/> to <paramref name="end"/>.</summary>
    public static ulong operator -(Gpa end, Gpa start) => end.Value - start.Value;

    /// <summary>Address order.</summary>
    public static bool operator <(Gpa left, Gpa right) => left.Value < right.Value;

    /// <summary>Address order.</summary>
    public static bool operator >(Gpa left, Gpa right) => left.Value > right.Value;

    /// <summary>Address order.</summary>
    public static bool operator <=(Gpa left, Gpa right) => left.Value <= right.Value;

    /// <summary>Address order.</summary>
    public static bool operator >=(Gpa left, Gpa right) => left.Value >= right.Value;

    /// <inheritdoc />
    public int CompareTo(Gpa other) => Value.CompareTo(other.Value);

    /// <summary>Hex form with a gpa prefix.</summary>
    public override string ToString() => "gpa:0x" + Value.ToString("x", CultureInfo.InvariantCulture);
}
