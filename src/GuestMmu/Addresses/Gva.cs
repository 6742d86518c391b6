using System.Globalization;

namespace Hypervisor.GuestMmu.Addresses;

/// <summary>A guest-virtual address: translated to a <see cref="Gpa"/> by the guest's own page tables.</summary>
/// <param name="Value">The raw 64-bit address (canonical in long mode).</param>
public readonly record struct Gva(ulong Value) : IComparable<Gva>
{
    /// <summary>The address rounded down to its page boundary.</summary>
    public Gva PageAligned => new(Value & ~Paging.PageOffsetMask);

    /// <summary>Offset of the address inside its page.</summary>
    public ulong PageOffset => Value & Paging.PageOffsetMask;

    /// <summary>The guest virtual page number.</summary>
    public ulong PageNumber => Value >> Paging.PageShift;

    /// <summary>True when bits 63..47 are all equal (a canonical 48-bit address).</summary>
    public bool IsCanonical48 => (ulong)((long)(Value << 16) >> 16) == Value;

    /// <summary>The address <paramref name="bytes"/> further on (wrapping as the CPU does).</summary>
    public static Gva operator +(Gva address, ulong bytes) => new(unchecked(address.Value + bytes));

    /// <inheritdoc />
    public int CompareTo(Gva other) => Value.CompareTo(other.Value);

    /// <summary>Hex form with a gva prefix.</summary>
    public override string ToString() => "gva:0x" + Value.ToString("x", CultureInfo.InvariantCulture);
}
