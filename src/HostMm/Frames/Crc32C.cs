using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Hypervisor.HostMm.Frames;

/// <summary>
/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78, initial and final value 0xFFFFFFFF), the
/// checksum KSM uses to see whether a page stayed unchanged between scans and the swap area keeps per slot. Five
/// paths (<see cref="Crc32CPath"/>), the fastest the CPU supports chosen once at type initialisation
/// (<see cref="Path"/>), in this order: with VPCLMULQDQ on 512-bit vectors, carry-less-multiply folding of four
/// <c>Vector512</c> accumulators; on 256-bit vectors, of four <c>Vector256</c> ones; with SSE4.2 and PCLMULQDQ, three
/// independent <c>crc32</c> chains over three equal blocks (the instruction's latency is three times its issue
/// interval, so one chain leaves two thirds of the unit idle), combined by shifting the first two with one carry-less
/// multiply each; with SSE4.2 alone, one chain; otherwise a table.
/// </summary>
/// <remarks>
/// <para><b>Folding.</b> A raw CRC is linear and appending n zero bits multiplies the message by x^n mod P, so a
/// 128-bit lane A = H·x^64 + L (H its first eight bytes) standing D bits before the end of the data so far can be
/// replaced by H·(x^(D+64) mod P) + L·(x^D mod P), two 64×32-bit carry-less products, and XORed into the lane D bits
/// further on. Each accumulator's lanes fold forward by the whole step (all accumulators' bytes), so the products of
/// one step depend only on the previous step's lane: four accumulators keep the multiplier busy through its latency.
/// At the end every lane folds onto the last one with its own distance, and the remaining 128 bits, the CRC of the
/// data so far as a message, are reduced by two <c>crc32</c> instructions; the tail goes through <c>crc32</c> too.</para>
/// <para>In reflected order a carry-less product of two 64-bit values carries one extra factor x, and a 32-bit
/// constant sits in the low half of its word, so the constant for multiplying by x^n is x^(n − 33) mod P
/// (see <see cref="XPowMod"/>), as for the interleaved path's shift.</para>
/// </remarks>
public static class Crc32C
{
    private const uint ReflectedPolynomial = 0x82F63B78u;

    /// <summary>Bytes per chain in the long interleaved round: 3 × 1360 = 4080, so a 4 KiB page is one round and a 16-byte tail.</summary>
    private const int LongBlock = 1360;

    /// <summary>Bytes per chain in the short interleaved round, for what the long rounds leave.</summary>
    private const int ShortBlock = 128;

    /// <summary>Bytes per folding step of <see cref="Crc32CPath.Fold512"/>: four 64-byte accumulators.</summary>
    private const int Fold512Step = 4 * 64;

    /// <summary>Bytes per folding step of <see cref="Crc32CPath.Fold256"/>: four 32-byte accumulators.</summary>
    private const int Fold256Step = 4 * 32;

    private static readonly uint[] _table = BuildTable();

    // Shift constants x^(8n − 33) mod P (reflected) for n = one and two blocks: see Shift.
    private static readonly ulong _longShift1 = XPowMod((8 * LongBlock) - 33);
    private static readonly ulong _longShift2 = XPowMod((16 * LongBlock) - 33);
    private static readonly ulong _shortShift1 = XPowMod((8 * ShortBlock) - 33);
    private static readonly ulong _shortShift2 = XPowMod((16 * ShortBlock) - 33);

    // Fold constants: one pair per 128-bit lane, see FoldPair. The step ones move every lane forward one step; the
    // final ones move lane g of 16 (or 8) onto the last lane; the last lane's own pair is zero (it stays as it is).
    private static readonly Vector128<ulong> _fold128 = FoldPair(128);
    private static readonly Vector512<ulong> _fold512Step = Vector512.Create(FoldPair(8 * Fold512Step));
    private static readonly Vector512<ulong> _fold512Final0 = FinalPairs512(0);
    private static readonly Vector512<ulong> _fold512Final1 = FinalPairs512(1);
    private static readonly Vector512<ulong> _fold512Final2 = FinalPairs512(2);
    private static readonly Vector512<ulong> _fold512Final3 = FinalPairs512(3);
    private static readonly Vector256<ulong> _fold256Step = Vector256.Create(FoldPair(8 * Fold256Step));
    private static readonly Vector256<ulong> _fold256Final0 = FinalPairs256(0);
    private static readonly Vector256<ulong> _fold256Final1 = FinalPairs256(1);
    private static readonly Vector256<ulong> _fold256Final2 = FinalPairs256(2);
    private static readonly Vector256<ulong> _fold256Final3 = FinalPairs256(3);

    /// <summary>True when <see cref="Compute(ReadOnlySpan{byte})"/> uses the hardware instruction.</summary>
    public static bool IsHardwareAccelerated { get; } = Sse42.X64.IsSupported;

    /// <summary>True when the three-chain path can run (SSE4.2 and PCLMULQDQ).</summary>
    public static bool IsInterleaved { get; } = Sse42.X64.IsSupported && Pclmulqdq.IsSupported;

    /// <summary>The path <see cref="Compute(ReadOnlySpan{byte})"/> takes: the fastest this CPU supports.</summary>
    public static Crc32CPath Path { get; } =
        IsSupported(Crc32CPath.Fold512) ? Crc32CPath.Fold512
        : IsSupported(Crc32CPath.Fold256) ? Crc32CPath.Fold256
        : IsSupported(Crc32CPath.Sse42Interleaved) ? Crc32CPath.Sse42Interleaved
        : IsSupported(Crc32CPath.Sse42) ? Crc32CPath.Sse42
        : Crc32CPath.Table;

    /// <summary>True when this CPU (and runtime) can run <paramref name="path"/>.</summary>
    public static bool IsSupported(Crc32CPath path) => path switch
    {
        Crc32CPath.Table => true,
        Crc32CPath.Sse42 => Sse42.X64.IsSupported,
        Crc32CPath.Sse42Interleaved => Sse42.X64.IsSupported && Pclmulqdq.IsSupported,
        Crc32CPath.Fold256 => Sse42.X64.IsSupported && Pclmulqdq.IsSupported && Pclmulqdq.V256.IsSupported,
        Crc32CPath.Fold512 => Sse42.X64.IsSupported && Pclmulqdq.IsSupported && Pclmulqdq.V512.IsSupported,
        _ => false,
    };

    /// <summary>The CRC-32C of <paramref name="data"/>; <c>"123456789"</c> gives 0xE3069283.</summary>
    public static uint Compute(ReadOnlySpan<byte> data) => Path switch
    {
        Crc32CPath.Fold512 => ComputeFold512(data),
        Crc32CPath.Fold256 => ComputeFold256(data),
        Crc32CPath.Sse42Interleaved => ComputeInterleaved(data),
        Crc32CPath.Sse42 => ComputeHardware(data),
        _ => ComputeSoftware(data),
    };

    /// <summary>The CRC-32C of <paramref name="data"/> by <paramref name="path"/> (for tests and benchmarks: every path gives the same value).</summary>
    /// <exception cref="PlatformNotSupportedException">This CPU cannot run <paramref name="path"/> (see <see cref="IsSupported"/>).</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="path"/> is not a defined path.</exception>
    public static uint Compute(Crc32CPath path, ReadOnlySpan<byte> data) => path switch
    {
        Crc32CPath.Fold512 => ComputeFold512(data),
        Crc32CPath.Fold256 => ComputeFold256(data),
        Crc32CPath.Sse42Interleaved => ComputeInterleaved(data),
        Crc32CPath.Sse42 => ComputeHardware(data),
        Crc32CPath.Table => ComputeSoftware(data),
        _ => throw new ArgumentOutOfRangeException(nameof(path), path, $"CRC-32C path {path} is not one of {string.Join(", ", Enum.GetNames<Crc32CPath>())}"),
    };

    /// <summary>
    /// The 512-bit folding path: four <c>Vector512</c> accumulators over 256-byte steps while a step remains, lanes
    /// folded onto the last, reduced with <c>crc32</c>; inputs shorter than a step go to the three-chain path. Only call
    /// when <see cref="IsSupported"/> says <see cref="Crc32CPath.Fold512"/>.
    /// </summary>
    internal static uint ComputeFold512(ReadOnlySpan<byte> data)
    {
        if (!IsSupported(Crc32CPath.Fold512))
        {
            throw new PlatformNotSupportedException("CRC-32C 512-bit folding path needs SSE4.2, PCLMULQDQ and VPCLMULQDQ on 512-bit vectors (Pclmulqdq.V512 is not supported)");
        }

        var length = data.Length;
        if (length < Fold512Step)
        {
            return ComputeInterleaved(data);
        }

        ref var start = ref MemoryMarshal.GetReference(data);
        var a0 = Load512(ref start, 0) ^ Vector512.CreateScalar((ulong)uint.MaxValue); // the initial value enters as the first 32 bits' complement
        var a1 = Load512(ref start, 64);
        var a2 = Load512(ref start, 128);
        var a3 = Load512(ref start, 192);
        var k = _fold512Step;
        var i = Fold512Step;
        for (; length - i >= Fold512Step; i += Fold512Step)
        {
            a0 = Fold512(a0, k, Load512(ref start, i));
            a1 = Fold512(a1, k, Load512(ref start, i + 64));
            a2 = Fold512(a2, k, Load512(ref start, i + 128));
            a3 = Fold512(a3, k, Load512(ref start, i + 192));
        }

        var t = Products512(a0, _fold512Final0) ^ Products512(a1, _fold512Final1) ^ Products512(a2, _fold512Final2) ^ Products512(a3, _fold512Final3);
        var lanes = t.GetLower() ^ t.GetUpper();
        var lane = lanes.GetLower() ^ lanes.GetUpper() ^ a3.GetUpper().GetUpper();
        return FinishFolded(lane, ref start, i, length);
    }

    /// <summary>
    /// The 256-bit folding path: four <c>Vector256</c> accumulators over 128-byte steps, as
    /// <see cref="ComputeFold512"/>. Only call when <see cref="IsSupported"/> says <see cref="Crc32CPath.Fold256"/>.
    /// </summary>
    internal static uint ComputeFold256(ReadOnlySpan<byte> data)
    {
        if (!IsSupported(Crc32CPath.Fold256))
        {
            throw new PlatformNotSupportedException("CRC-32C 256-bit folding path needs SSE4.2, PCLMULQDQ and VPCLMULQDQ on 256-bit vectors (Pclmulqdq.V256 is not supported)");
        }

        var length = data.Length;
        if (length < Fold256Step)
        {
            return ComputeInterleaved(data);
        }

        ref var start = ref MemoryMarshal.GetReference(data);
        var a0 = Load256(ref start, 0) ^ Vector256.CreateScalar((ulong)uint.MaxValue);
        var a1 = Load256(ref start, 32);
        var a2 = Load256(ref start, 64);
        var a3 = Load256(ref start, 96);
        var k = _fold256Step;
        var i = Fold256Step;
        for (; length - i >= Fold256Step; i += Fold256Step)
        {
            a0 = Fold256(a0, k, Load256(ref start, i));
            a1 = Fold256(a1, k, Load256(ref start, i + 32));
            a2 = Fold256(a2, k, Load256(ref start, i + 64));
            a3 = Fold256(a3, k, Load256(ref start, i + 96));
        }

        var t = Products256(a0, _fold256Final0) ^ Products256(a1, _fold256Final1) ^ Products256(a2, _fold256Final2) ^ Products256(a3, _fold256Final3);
        var lane = t.GetLower() ^ t.GetUpper() ^ a3.GetUpper();
        return FinishFolded(lane, ref start, i, length);
    }

    /// <summary>
    /// Ends a folding path: <paramref name="lane"/> holds the data before <paramref name="i"/> folded into its last
    /// 16 bytes; whole 16-byte chunks fold in one at a time, then the lane is reduced to the CRC and the tail added.
    /// </summary>
    private static uint FinishFolded(Vector128<ulong> lane, ref byte start, int i, int length)
    {
        var k = _fold128;
        for (; length - i >= 16; i += 16)
        {
            var chunk = Vector128.LoadUnsafe(ref Unsafe.Add(ref start, i)).AsUInt64();
            lane = Pclmulqdq.CarrylessMultiply(lane, k, 0x00) ^ Pclmulqdq.CarrylessMultiply(lane, k, 0x11) ^ chunk;
        }

        // The lane, as a 16-byte message with initial value 0, has the raw CRC of everything before i.
        var crc = Sse42.X64.Crc32(Sse42.X64.Crc32(0, lane.GetElement(0)), lane.GetElement(1));
        for (; length - i >= sizeof(ulong); i += sizeof(ulong))
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

    private static Vector512<ulong> Load512(ref byte start, int offset) => Vector512.LoadUnsafe(ref Unsafe.Add(ref start, offset)).AsUInt64();

    private static Vector256<ulong> Load256(ref byte start, int offset) => Vector256.LoadUnsafe(ref Unsafe.Add(ref start, offset)).AsUInt64();

    /// <summary>Every lane of <paramref name="acc"/> moved forward by its pair in <paramref name="k"/>, plus <paramref name="data"/>.</summary>
    private static Vector512<ulong> Fold512(Vector512<ulong> acc, Vector512<ulong> k, Vector512<ulong> data) =>
        Pclmulqdq.V512.CarrylessMultiply(acc, k, 0x00) ^ Pclmulqdq.V512.CarrylessMultiply(acc, k, 0x11) ^ data;

    private static Vector512<ulong> Products512(Vector512<ulong> acc, Vector512<ulong> k) =>
        Pclmulqdq.V512.CarrylessMultiply(acc, k, 0x00) ^ Pclmulqdq.V512.CarrylessMultiply(acc, k, 0x11);

    private static Vector256<ulong> Fold256(Vector256<ulong> acc, Vector256<ulong> k, Vector256<ulong> data) =>
        Pclmulqdq.V256.CarrylessMultiply(acc, k, 0x00) ^ Pclmulqdq.V256.CarrylessMultiply(acc, k, 0x11) ^ data;

    private static Vector256<ulong> Products256(Vector256<ulong> acc, Vector256<ulong> k) =>
        Pclmulqdq.V256.CarrylessMultiply(acc, k, 0x00) ^ Pclmulqdq.V256.CarrylessMultiply(acc, k, 0x11);

    /// <summary>
    /// The constants that move a 128-bit lane forward by <paramref name="bits"/> (at least 33): the low word
    /// multiplies the lane's first eight bytes (its high-order half) by x^(bits + 64), the high word the rest by x^bits.
    /// </summary>
    private static Vector128<ulong> FoldPair(int bits) => Vector128.Create(XPowMod(bits + 64 - 33), XPowMod(bits - 33));

    /// <summary>The final pairs of 512-bit accumulator <paramref name="a"/> of 4: lane g = 4a + j of 16 moves 128 × (15 − g) bits; the last lane's pair is zero.</summary>
    private static Vector512<ulong> FinalPairs512(int a) => Vector512.Create(
        Vector256.Create(FinalPair((4 * a) + 0, 16), FinalPair((4 * a) + 1, 16)),
        Vector256.Create(FinalPair((4 * a) + 2, 16), FinalPair((4 * a) + 3, 16)));

    /// <summary>The final pairs of 256-bit accumulator <paramref name="a"/> of 4: lane g = 2a + j of 8 moves 128 × (7 − g) bits; the last lane's pair is zero.</summary>
    private static Vector256<ulong> FinalPairs256(int a) => Vector256.Create(FinalPair(2 * a, 8), FinalPair((2 * a) + 1, 8));

    private static Vector128<ulong> FinalPair(int lane, int lanes) => lane == lanes - 1 ? Vector128<ulong>.Zero : FoldPair(128 * (lanes - 1 - lane));

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
