using System.Globalization;

namespace Hypervisor.GuestMmu.Addresses;

/// <summary>A guest frame number: a guest-physical address divided by the page size.</summary>
/// <param name="Value">The raw frame number.</param>
public readonly record struct Gfn(ulong Value) : IComparable<Gfn>
{
    /// <summary>The guest-physical address of the frame's first byte.</summary>
    public Gpa ToGpa() => new(Value << Paging.PageShift);

    /// <summary>The frame <paramref name="frames"/> further on.</summary>
    public static Gfn operator +(Gfn gfn, ulong frames) => new(gfn.Value + frames);

    /// <summary>The number of frames from <paramref name="start"/> to <paramref name="end"/>.</summary>
    public static ulong operator -(Gfn end, Gfn start) => end.Value - start.Value;

    /// <summary>Frame order.</summary>
    public static bool operator <(Gfn left, Gfn right) => left.Value < right.Value;

    /// <summary>Frame order.</summary>
    public static bool operator >(Gfn left, Gfn right) => left.Value > right.Value;

    /// <summary>Frame order.</summary>
    public static bool operator <=(Gfn left, Gfn right) => left.Value <= right.Value;

    /// <summary>Frame order.</summary>
    public static bool operator >=(Gfn left, Gfn right) => left.Value >= right.Value;

    /// <inheritdoc />
    public int CompareTo(Gfn other) => Value.CompareTo(other.Value);

    /// <summary>Hex form with a gfn prefix.</summary>
    public override string ToString() => "gfn:0x" + Value.ToString("x", CultureInfo.InvariantCulture);
}
