using System.Runtime.Intrinsics.X86;

namespace Hypervisor.HostMm.Frames;

/// <summary>
/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78, initial and final value 0xFFFFFFFF), the
/// checksum KSM uses to see whether a page stayed unchanged between scans. The SSE4.2 <c>crc32</c>
/// instruction is used when the CPU has it (chosen once, at type initialisation); otherwise a table.
/// </summary>
public static class Crc32C
{
    private const uint ReflectedPolynomial = 0x82F63B78u;

    private static readonly uint[] _table = BuildTable();

    /// <summary>True when <see cref="Compute"/> uses the hardware instruction.</summary>
    public static bool IsHardwareAccelerated { get; } = Sse42.X64.IsSupported;

    /// <summary>The CRC-32C of <paramref name="data"/>; <c>"123456789"</c> gives 0xE3069283.</summary>
    public static uint Compute(ReadOnlySpan<byte> data) =>
        IsHardwareAccelerated ? ComputeHardware(data) : ComputeSoftware(data);

    /// <summary>The SSE4.2 path: 8-byte words, then the tail byte by byte. Only call when <see cref="Sse42.X64.IsSupported"/>.</summary>
    internal static uint ComputeHardware(ReadOnlySpan<byte> data)
    {
        if (!Sse42.X64.IsSupported)
        {
            throw new PlatformNotSupportedException("CRC-32C hardware path needs SSE4.2 on x64 (Sse42.X64.IsSupported is false)");
        }

        ref var start = ref MemoryMarshal.GetReference(data);
        var length = data.Length;
        ulong crc = uint.MaxValue;
        var i = 0;
        for (; i <= length - sizeof(ulong); i += sizeof(ulong))
        {
            crc = Sse42.X64.Crc32(crc, Unsafe.ReadUnaligned<ulong>(ref Unsafe.Add(ref start, i)));
        }

        var crc32 = (uint)crc;
        for (; i < length; i++)
        {
            crc32 = Sse42.Crc32(crc32, Unsafe.Add(ref start, i));
        }

        return ~crc32;
    }

    /// <summary>The portable path: one table lookup per byte.</summary>
    internal static uint ComputeSoftware(ReadOnlySpan<byte> data)
    {
        var table = _table;
        var crc = uint.MaxValue;
        foreach (var b in data)
        {
            crc = table[(byte)(crc ^ b)] ^ (crc >> 8);
        }

        return ~crc;
    }

    private static uint[] BuildTable()
    {
        var table = new uint[256];
        for (uint n = 0; n < 256; n++)
        {
            var c = n;
            for (var k = 0; k < 8; k++)
            {
                c = (c & 1) != 0 ? (c >> 1) ^ ReflectedPolynomial : c >> 1;
            }

            table[n] = c;
        }

        return table;
    }
}
