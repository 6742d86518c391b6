using System.Globalization;

namespace Hypervisor.Notifier;

/// <summary>A host page frame number: the index of a 4 KiB frame of host RAM.</summary>
/// <param name="Value">The raw frame number.</param>
public readonly record struct Pfn(ulong Value) : IComparable<Pfn>
{
    /// <summary>Largest frame number representable in an x86-64 PTE (bits 12..51).</summary>
    public const ulong MaxValue = (1UL << 40) - 1;

    /// <summary>The frame's host physical byte address.</summary>
    public ulong PhysicalAddress => Value << Paging.PageShift;

    /// <summary>The frame <paramref name="frames"/> further on.</summary>
    public static Pfn operator +(Pfn pfn, ulong frames) => new(pfn.Value + frames);

    /// <summary>Frame order.</summary>
    public static bool operator <(Pfn left, Pfn right) => left.Value < right.Value;

    /// <summary>Frame order.</summary>
    public static bool operator >(Pfn left, Pfn right) => left.Value > right.Value;

    /// <summary>Frame order.</summary>
    public static bool operator <=(Pfn left, Pfn right) => left.Value <= right.Value;

    /// <summary>Frame order.</summary>
    public static bool operator >=(Pfn left, Pfn right) => left.Value >= right.Value;

    /// <inheritdoc />
    public int CompareTo(Pfn other) => Value.CompareTo(other.Value);

    /// <summary>Hex form, as Linux prints pfns.</summary>
    public override string ToString() => "pfn:0x" + Value.ToString("x", CultureInfo.InvariantCulture);
}
