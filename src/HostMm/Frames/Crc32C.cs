using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Hypervisor.HostMm.Frames;

/// <summary>
/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78, initial and final value 0xFFFFFFFF), the
/// checksum KSM uses to see whether a page stayed unchanged between scans and the swap area keeps per slot. Three
/// paths, chosen once at type initialisation: with SSE4.2 and PCLMULQDQ, three independent <c>crc32</c> chains over
/// three equal blocks (the instruction's latency is three times its issue interval, so one chain leaves two thirds of
/// the unit idle), combined by shifting the first two with one carry-less multiply each; with SSE4.2 alone, one chain;
/// otherwise a table.
/// </summary>
public static class Crc32C
{
    private const uint ReflectedPolynomial = 0x82F63B78u;

    /// <summary>Bytes per chain in the long interleaved round: 3 × 1360 = 4080, so a 4 KiB page is one round and a 16-byte tail.</summary>
    private const int LongBlock = 1360;

    /// <summary>Bytes per chain in the short interleaved round, for what the long rounds leave.</summary>
    private const int ShortBlock = 128;

    private static readonly uint[] _table = BuildTable();

    // Shift constants x^(8n − 33) mod P (reflected) for n = one and two blocks: see Shift.
    private static readonly ulong _longShift1 = XPowMod((8 * LongBlock) - 33);
    private static readonly ulong _longShift2 = XPowMod((16 * LongBlock) - 33);
    private static readonly ulong _shortShift1 = XPowMod((8 * ShortBlock) - 33);
    private static readonly ulong _shortShift2 = XPowMod((16 * ShortBlock) - 33);

    /// <summary>True when <see cref="Compute"/> uses the hardware instruction.</summary>
    public static bool IsHardwareAccelerated { get; } = Sse42.X64.IsSupported;

    /// <summary>True when <see cref="Compute"/> runs three interleaved chains (SSE4.2 and PCLMULQDQ).</summary>
    public static bool IsInterleaved { get; } = Sse42.X64.IsSupported && Pclmulqdq.IsSupported;

    /// <summary>The CRC-32C of <paramref name="data"/>; <c>"123456789"</c> gives 0xE3069283.</summary>
    public static uint Compute(ReadOnlySpan<byte> data) =>
        IsInterleaved ? ComputeInterleaved(data) : IsHardwareAccelerated ? ComputeHardware(data) : ComputeSoftware(data);

    /// <summary>
    /// The interleaved path: while at least three blocks remain, three independent chains (the first continuing the
    /// running CRC, the other two from 0) over three adjacent blocks of n bytes, combined as
    /// <c>crc = shift(c0, 2n) ⊕ shift(c1, n) ⊕ c2</c> (a raw CRC is linear: appending n zero bytes multiplies it by
    /// x^(8n) mod P); then one chain over the rest. Only call when <see cref="IsInterleaved"/>.
    /// </summary>
    internal static uint ComputeInterleaved(ReadOnlySpan<byte> data)
    {
        if (!IsInterleaved)
        {
            throw new PlatformNotSupportedException("CRC-32C interleaved path needs SSE4.2 and PCLMULQDQ on x64 (Sse42.X64 or Pclmulqdq is not supported)");
        }

        ref var start = ref MemoryMarshal.GetReference(data);
        var length = data.Length;
        ulong crc = uint.MaxValue;
        var i = 0;
        for (; length - i >= 3 * LongBlock; i += 3 * LongBlock)
        {
            crc = ThreeChains(crc, ref Unsafe.Add(ref start, i), LongBlock, _longShift1, _longShift2);
        }

        for (; length - i >= 3 * ShortBlock; i += 3 * ShortBlock)
        {
            crc = ThreeChains(crc, ref Unsafe.Add(ref start, i), ShortBlock, _shortShift1, _shortShift2);
        }

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

    /// <summary>The raw CRC of the 3 × <paramref name="block"/> bytes at <paramref name="data"/>, continuing <paramref name="crc"/>.</summary>
    private static ulong ThreeChains(ulong crc, ref byte data, int block, ulong shift1, ulong shift2)
    {
        ulong crc1 = 0, crc2 = 0;
        ref var second = ref Unsafe.Add(ref data, block);
        ref var third = ref Unsafe.Add(ref data, 2 * block);
        for (var j = 0; j < block; j += sizeof(ulong))
        {
            crc = Sse42.X64.Crc32(crc, Unsafe.ReadUnaligned<ulong>(ref Unsafe.Add(ref data, j)));
            crc1 = Sse42.X64.Crc32(crc1, Unsafe.ReadUnaligned<ulong>(ref Unsafe.Add(ref second, j)));
            crc2 = Sse42.X64.Crc32(crc2, Unsafe.ReadUnaligned<ulong>(ref Unsafe.Add(ref third, j)));
        }

        return Shift(crc, shift2) ^ Shift(crc1, shift1) ^ crc2;
    }

    /// <summary>
    /// <paramref name="crc"/> · x^(8n) mod P for <paramref name="constant"/> = x^(8n − 33) mod P: the carry-less product
    /// of two reflected 32-bit values is their product times x as a reflected 64-bit value, and <c>crc32</c> of a
    /// 64-bit word from 0 multiplies it by x^32 mod P, so the two together multiply by the constant times x^33.
    /// </summary>
    private static ulong Shift(ulong crc, ulong constant)
    {
        var product = Pclmulqdq.CarrylessMultiply(Vector128.CreateScalar(crc), Vector128.CreateScalar(constant), 0x00);
        return Sse42.X64.Crc32(0, product.ToScalar());
    }

    /// <summary>x^<paramref name="power"/> mod P in the reflected representation (bit 31 is x^0).</summary>
    private static ulong XPowMod(int power)
    {
        var value = 0x80000000u;
        for (var k = 0; k < power; k++)
        {
            value = (value & 1) != 0 ? (value >> 1) ^ ReflectedPolynomial : value >> 1;
        }

        return value;
    }

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
