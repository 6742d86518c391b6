namespace Hypervisor.Vmm.Acpi;

/// <summary>The ACPI checksum rule: the bytes a checksum covers, the checksum byte included, sum to 0 modulo 256.</summary>
public static class AcpiChecksum
{
    /// <summary>The byte sum of <paramref name="bytes"/> modulo 256 (0 for a correctly checksummed range).</summary>
    /// <param name="bytes">The covered bytes.</param>
    public static byte Sum(ReadOnlySpan<byte> bytes)
    {
        byte sum = 0;
        foreach (var b in bytes)
        {
            sum += b;
        }

        return sum;
    }

    /// <summary>Sets <paramref name="bytes"/>[<paramref name="checksumOffset"/>] so that <paramref name="bytes"/> sums to 0.</summary>
    /// <param name="bytes">The covered bytes, the checksum byte among them.</param>
    /// <param name="checksumOffset">The checksum byte's offset in <paramref name="bytes"/>.</param>
    public static void Fill(Span<byte> bytes, int checksumOffset)
    {
        bytes[checksumOffset] = 0;
        bytes[checksumOffset] = (byte)-Sum(bytes);
    }
}
