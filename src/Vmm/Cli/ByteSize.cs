using System.Globalization;

namespace Hypervisor.Vmm.Cli;

/// <summary>
/// A size option's value in bytes, with the one syntax every size option of <c>hv</c> reads and writes: a whole number
/// with an optional unit — <c>B</c> for bytes, or <c>K</c>, <c>M</c>, <c>G</c>, <c>T</c> (binary multiples, optionally
/// followed by <c>B</c> or <c>iB</c>), in any case. A bare number is MiB, as QEMU's <c>-m</c> reads it, so
/// <c>hv run -m 512</c> is 512 MiB and <c>hv bench --size 64</c> is 64 MiB.
/// </summary>
/// <param name="Bytes">The size in bytes.</param>
/// <remarks><see cref="Format"/> writes every count so that <see cref="TryParse"/> reads it back as the same count.</remarks>
internal readonly record struct ByteSize(ulong Bytes)
{
    /// <summary>The unit of a number written without one: MiB.</summary>
    public const ulong BareNumberUnit = 1UL << 20;

    /// <summary>The syntax in words, for option descriptions.</summary>
    public const string Syntax = "a number with a K, M, G or T suffix (or B for bytes); a bare number is MiB";

    private static readonly (string Suffix, ulong Unit)[] Units =
    [
        ("KIB", 1UL << 10), ("MIB", 1UL << 20), ("GIB", 1UL << 30), ("TIB", 1UL << 40),
        ("KB", 1UL << 10), ("MB", 1UL << 20), ("GB", 1UL << 30), ("TB", 1UL << 40),
        ("K", 1UL << 10), ("M", 1UL << 20), ("G", 1UL << 30), ("T", 1UL << 40),
        ("B", 1),
    ];

    /// <summary>Reads <paramref name="text"/> in the size syntax (surrounding white space allowed).</summary>
    /// <param name="text">The text, e.g. <c>128M</c>, <c>512</c> (MiB), <c>4096B</c>, <c>2GiB</c>.</param>
    /// <param name="size">The size; default when the text is not a size.</param>
    /// <returns>False for an empty text, a unit it does not know, a number that is not whole and non-negative, or a size beyond 2^64 - 1 bytes.</returns>
    public static bool TryParse(string? text, out ByteSize size)
    {
        size = default;
        var upper = (text ?? string.Empty).Trim().ToUpperInvariant();
        var unit = BareNumberUnit;
        foreach (var (suffix, scale) in Units)
        {
            if (upper.EndsWith(suffix, StringComparison.Ordinal))
            {
                unit = scale;
                upper = upper[..^suffix.Length];
                break;
            }
        }

        if (!ulong.TryParse(upper, NumberStyles.None, CultureInfo.InvariantCulture, out var count) || count > ulong.MaxValue / unit)
        {
            return false;
        }

        size = new ByteSize(count * unit);
        return true;
    }

    /// <summary>
    /// Writes <paramref name="bytes"/> with the largest of T, G, M and K that divides it, as a number of bytes with
    /// <c>B</c> when none does, and <c>0</c> for zero.
    /// </summary>
    public static string Format(ulong bytes)
    {
        var c = CultureInfo.InvariantCulture;
        return bytes switch
        {
            0 => "0",
            _ when bytes % (1UL << 40) == 0 => (bytes >> 40).ToString(c) + "T",
            _ when bytes % (1UL << 30) == 0 => (bytes >> 30).ToString(c) + "G",
            _ when bytes % (1UL << 20) == 0 => (bytes >> 20).ToString(c) + "M",
            _ when bytes % (1UL << 10) == 0 => (bytes >> 10).ToString(c) + "K",
            _ => bytes.ToString(c) + "B",
        };
    }

    /// <inheritdoc />
    public override string ToString() => Format(Bytes);
}
