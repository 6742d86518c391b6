using System.Globalization;

namespace Hypervisor.Vmm.Cli;

/// <summary>
/// A size option's value: a byte count whose text (what help shows as the default) is written in the
/// options' own K/M/G syntax, e.g. <c>128M</c> rather than <c>134217728</c>.
/// </summary>
/// <param name="Bytes">The size in bytes.</param>
internal readonly record struct ByteSize(ulong Bytes)
{
    /// <summary>
    /// Writes <paramref name="bytes"/> with the largest of G, M and K that divides it. Every multiple of 1 KiB reads back
    /// as the same count through <c>hv run -m</c> and <c>hv bench --size</c>; other counts have no spelling in that
    /// syntax and are written as "N bytes".
    /// </summary>
    public static string Format(ulong bytes)
    {
        var c = CultureInfo.InvariantCulture;
        return bytes switch
        {
            0 => "0",
            _ when bytes % (1UL << 30) == 0 => (bytes >> 30).ToString(c) + "G",
            _ when bytes % (1UL << 20) == 0 => (bytes >> 20).ToString(c) + "M",
            _ when bytes % (1UL << 10) == 0 => (bytes >> 10).ToString(c) + "K",
            _ => bytes.ToString(c) + " bytes",
        };
    }

    /// <inheritdoc />
    public override string ToString() => Format(Bytes);
}
