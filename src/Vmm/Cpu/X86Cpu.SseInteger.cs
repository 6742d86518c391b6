using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using Iced.Intel;

namespace Hypervisor.Vmm.Cpu;

/// <summary>
/// SSE2 integer and logical instructions on XMM registers: add/subtract (wrapping and saturating), multiplies,
/// compares, min/max, averages, shifts, shuffles, unpacks and packs, PEXTRW/PINSRW, and the bitwise logic shared
/// with the float forms (ANDPS/ANDNPD/ORPS/XORPD ...).
/// </summary>
public sealed partial class X86Cpu
{
    /// <summary>Runs <paramref name="d"/> if it is an SSE integer or logical instruction; false when it is not one.</summary>
    private bool ExecuteSseInteger(ref DecodedInstruction d)
    {
        ref var i = ref d.Instruction;
        switch (i.Mnemonic)
        {
            case Mnemonic.Pand: case Mnemonic.Andps: case Mnemonic.Andpd: Binary(ref d, (a, b) => a & b); return true;
            case Mnemonic.Pandn: case Mnemonic.Andnps: case Mnemonic.Andnpd: Binary(ref d, (a, b) => Vector128.AndNot(b, a)); return true;
            case Mnemonic.Por: case Mnemonic.Orps: case Mnemonic.Orpd: Binary(ref d, (a, b) => a | b); return true;
            case Mnemonic.Pxor: case Mnemonic.Xorps: case Mnemonic.Xorpd: Binary(ref d, (a, b) => a ^ b); return true;
            case Mnemonic.Paddb: Binary(ref d, (a, b) => a + b); return true;
            case Mnemonic.Paddw: Binary(ref d, (a, b) => (a.AsUInt16() + b.AsUInt16()).AsByte()); return true;
            case Mnemonic.Paddd: Binary(ref d, (a, b) => (a.AsUInt32() + b.AsUInt32()).AsByte()); return true;
            case Mnemonic.Paddq: Binary(ref d, (a, b) => (a.AsUInt64() + b.AsUInt64()).AsByte()); return true;
            case Mnemonic.Psubb: Binary(ref d, (a, b) => a - b); return true;
            case Mnemonic.Psubw: Binary(ref d, (a, b) => (a.AsUInt16() - b.AsUInt16()).AsByte()); return true;
            case Mnemonic.Psubd: Binary(ref d, (a, b) => (a.AsUInt32() - b.AsUInt32()).AsByte()); return true;
            case Mnemonic.Psubq: Binary(ref d, (a, b) => (a.AsUInt64() - b.AsUInt64()).AsByte()); return true;
            case Mnemonic.Paddsb: Lanes<sbyte>(ref d, (a, b) => SaturateSByte(a + b)); return true;
            case Mnemonic.Paddsw: Lanes<short>(ref d, (a, b) => SaturateShort(a + b)); return true;
            case Mnemonic.Paddusb: Lanes<byte>(ref d, (a, b) => (byte)Math.Min(a + b, 255)); return true;
            case Mnemonic.Paddusw: Lanes<ushort>(ref d, (a, b) => (ushort)Math.Min(a + b, 65535)); return true;
            case Mnemonic.Psubsb: Lanes<sbyte>(ref d, (a, b) => SaturateSByte(a - b)); return true;
            case Mnemonic.Psubsw: Lanes<short>(ref d, (a, b) => SaturateShort(a - b)); return true;
            case Mnemonic.Psubusb: Lanes<byte>(ref d, (a, b) => (byte)Math.Max(a - b, 0)); return true;
            case Mnemonic.Psubusw: Lanes<ushort>(ref d, (a, b) => (ushort)Math.Max(a - b, 0)); return true;
            case Mnemonic.Pmullw: Binary(ref d, (a, b) => (a.AsInt16() * b.AsInt16()).AsByte()); return true;
            case Mnemonic.Pmulhw: Lanes<short>(ref d, (a, b) => (short)((a * b) >> 16)); return true;
            case Mnemonic.Pmulhuw: Lanes<ushort>(ref d, (a, b) => (ushort)((uint)(a * b) >> 16)); return true;
            case Mnemonic.Pmuludq:
                Binary(ref d, (a, b) => Vector128.Create(
                    (ulong)a.AsUInt32().GetElement(0) * b.AsUInt32().GetElement(0),
                    (ulong)a.AsUInt32().GetElement(2) * b.AsUInt32().GetElement(2)).AsByte());
                return true;
            case Mnemonic.Pmaddwd: Binary(ref d, MultiplyAddWords); return true;
            case Mnemonic.Psadbw: Binary(ref d, SumAbsoluteDifferences); return true;
            case Mnemonic.Pavgb: Lanes<byte>(ref d, (a, b) => (byte)((a + b + 1) >> 1)); return true;
            case Mnemonic.Pavgw: Lanes<ushort>(ref d, (a, b) => (ushort)((a + b + 1) >> 1)); return true;
            case Mnemonic.Pminub: Binary(ref d, (a, b) => Vector128.Min(a, b)); return true;
            case Mnemonic.Pmaxub: Binary(ref d, (a, b) => Vector128.Max(a, b)); return true;
            case Mnemonic.Pminsw: Binary(ref d, (a, b) => Vector128.Min(a.AsInt16(), b.AsInt16()).AsByte()); return true;
            case Mnemonic.Pmaxsw: Binary(ref d, (a, b) => Vector128.Max(a.AsInt16(), b.AsInt16()).AsByte()); return true;
            case Mnemonic.Pcmpeqb: Binary(ref d, (a, b) => Vector128.Equals(a, b)); return true;
            case Mnemonic.Pcmpeqw: Binary(ref d, (a, b) => Vector128.Equals(a.AsUInt16(), b.AsUInt16()).AsByte()); return true;
            case Mnemonic.Pcmpeqd: Binary(ref d, (a, b) => Vector128.Equals(a.AsUInt32(), b.AsUInt32()).AsByte()); return true;
            case Mnemonic.Pcmpgtb: Binary(ref d, (a, b) => Vector128.GreaterThan(a.AsSByte(), b.AsSByte()).AsByte()); return true;
            case Mnemonic.Pcmpgtw: Binary(ref d, (a, b) => Vector128.GreaterThan(a.AsInt16(), b.AsInt16()).AsByte()); return true;
            case Mnemonic.Pcmpgtd: Binary(ref d, (a, b) => Vector128.GreaterThan(a.AsInt32(), b.AsInt32()).AsByte()); return true;
            case Mnemonic.Psllw: case Mnemonic.Pslld: case Mnemonic.Psllq:
            case Mnemonic.Psrlw: case Mnemonic.Psrld: case Mnemonic.Psrlq:
            case Mnemonic.Psraw: case Mnemonic.Psrad:
                ShiftLanes(ref d);
                return true;
            case Mnemonic.Pslldq: case Mnemonic.Psrldq:
            {
                ref var dst = ref _ext.Xmm[XmmIndex(i.Op0Register)];
                var count = (int)Math.Min(d.Immediate & 0xFF, 16);
                var source = dst;
                var result = Vector128<byte>.Zero;
                for (var n = 0; n < 16; n++)
                {
                    var from = i.Mnemonic == Mnemonic.Pslldq ? n - count : n + count;
                    if (from is >= 0 and < 16)
                    {
                        result = result.WithElement(n, source.GetElement(from));
                    }
                }

                dst = result;
                return true;
            }

            case Mnemonic.Pshufd:
            {
                var s = SseOperand(ref d, 1).AsUInt32();
                var imm = (int)d.Immediate;
                _ext.Xmm[XmmIndex(i.Op0Register)] = Vector128.Create(
                    s.GetElement(imm & 3), s.GetElement((imm >> 2) & 3), s.GetElement((imm >> 4) & 3), s.GetElement((imm >> 6) & 3)).AsByte();
                return true;
            }

            case Mnemonic.Pshuflw:
            case Mnemonic.Pshufhw:
            {
                var s = SseOperand(ref d, 1).AsUInt16();
                var imm = (int)d.Immediate;
                var baseLane = i.Mnemonic == Mnemonic.Pshuflw ? 0 : 4;
                var result = s;
                for (var n = 0; n < 4; n++)
                {
                    result = result.WithElement(baseLane + n, s.GetElement(baseLane + ((imm >> (2 * n)) & 3)));
                }

                _ext.Xmm[XmmIndex(i.Op0Register)] = result.AsByte();
                return true;
            }

            case Mnemonic.Shufps:
            {
                var s = SseOperand(ref d, 1).AsUInt32();
                ref var dst = ref _ext.Xmm[XmmIndex(i.Op0Register)];
                var a = dst.AsUInt32();
                var imm = (int)d.Immediate;
                dst = Vector128.Create(a.GetElement(imm & 3), a.GetElement((imm >> 2) & 3), s.GetElement((imm >> 4) & 3), s.GetElement((imm >> 6) & 3)).AsByte();
                return true;
            }

            case Mnemonic.Shufpd:
            {
                var s = SseOperand(ref d, 1).AsUInt64();
                ref var dst = ref _ext.Xmm[XmmIndex(i.Op0Register)];
                var imm = (int)d.Immediate;
                dst = Vector128.Create(dst.AsUInt64().GetElement(imm & 1), s.GetElement((imm >> 1) & 1)).AsByte();
                return true;
            }

            case Mnemonic.Punpcklbw: Unpack(ref d, 1, high: false); return true;
            case Mnemonic.Punpcklwd: Unpack(ref d, 2, high: false); return true;
            case Mnemonic.Punpckldq: case Mnemonic.Unpcklps: Unpack(ref d, 4, high: false); return true;
            case Mnemonic.Punpcklqdq: case Mnemonic.Unpcklpd: Unpack(ref d, 8, high: false); return true;
            case Mnemonic.Punpckhbw: Unpack(ref d, 1, high: true); return true;
            case Mnemonic.Punpckhwd: Unpack(ref d, 2, high: true); return true;
            case Mnemonic.Punpckhdq: case Mnemonic.Unpckhps: Unpack(ref d, 4, high: true); return true;
            case Mnemonic.Punpckhqdq: case Mnemonic.Unpckhpd: Unpack(ref d, 8, high: true); return true;
            case Mnemonic.Packsswb: Pack(ref d, 2, (v) => (byte)SaturateSByte(v), 1); return true;
            case Mnemonic.Packuswb: Pack(ref d, 2, (v) => (byte)Math.Clamp(v, 0, 255), 1); return true;
            case Mnemonic.Packssdw: Pack(ref d, 4, (v) => (ushort)SaturateShort(v), 2); return true;
            case Mnemonic.Pextrw:
                WriteGpr(d.Reg0, _ext.Xmm[XmmIndex(i.Op1Register)].AsUInt16().GetElement((int)(d.Immediate & 7)));
                return true;
            case Mnemonic.Pinsrw:
            {
                var value = i.Op1Kind == OpKind.Memory ? ReadMemory(Linear(ref d), 2) : ReadGpr(d.Reg1);
                ref var dst = ref _ext.Xmm[XmmIndex(i.Op0Register)];
                dst = dst.AsUInt16().WithElement((int)(d.Immediate & 7), (ushort)value).AsByte();
                return true;
            }

            default:
                return false;
        }
    }

    /// <summary>Operand 0 (XMM) = <paramref name="op"/>(operand 0, operand 1).</summary>
    private void Binary(ref DecodedInstruction d, Func<Vector128<byte>, Vector128<byte>, Vector128<byte>> op)
    {
        var source = SseOperand(ref d, 1);
        ref var dst = ref _ext.Xmm[XmmIndex(d.Instruction.Op0Register)];
        dst = op(dst, source);
    }

    /// <summary>Operand 0 (XMM) = <paramref name="op"/> applied lane by lane to lanes of <typeparamref name="T"/>.</summary>
    private void Lanes<T>(ref DecodedInstruction d, Func<T, T, T> op)
        where T : unmanaged
    {
        var source = SseOperand(ref d, 1);
        ref var dst = ref _ext.Xmm[XmmIndex(d.Instruction.Op0Register)];
        var a = MemoryMarshal.Cast<Vector128<byte>, T>(MemoryMarshal.CreateSpan(ref dst, 1));
        var b = MemoryMarshal.Cast<Vector128<byte>, T>(MemoryMarshal.CreateSpan(ref source, 1));
        for (var n = 0; n < a.Length; n++)
        {
            a[n] = op(a[n], b[n]);
        }
    }

    private static sbyte SaturateSByte(int value) => (sbyte)Math.Clamp(value, sbyte.MinValue, sbyte.MaxValue);

    private static short SaturateShort(int value) => (short)Math.Clamp(value, short.MinValue, short.MaxValue);

    private static Vector128<byte> MultiplyAddWords(Vector128<byte> a, Vector128<byte> b)
    {
        var x = a.AsInt16();
        var y = b.AsInt16();
        var result = Vector128<int>.Zero;
        for (var n = 0; n < 4; n++)
        {
            result = result.WithElement(n, unchecked((x.GetElement(2 * n) * y.GetElement(2 * n)) + (x.GetElement((2 * n) + 1) * y.GetElement((2 * n) + 1))));
        }

        return result.AsByte();
    }

    private static Vector128<byte> SumAbsoluteDifferences(Vector128<byte> a, Vector128<byte> b)
    {
        ulong low = 0, high = 0;
        for (var n = 0; n < 8; n++)
        {
            low += (ulong)Math.Abs(a.GetElement(n) - b.GetElement(n));
            high += (ulong)Math.Abs(a.GetElement(n + 8) - b.GetElement(n + 8));
        }

        return Vector128.Create(low, high).AsByte();
    }

    /// <summary>PSLL/PSRL/PSRA by an immediate or by the low quadword of an XMM/m128 operand; a count past the lane width zeroes (or sign-fills).</summary>
    private void ShiftLanes(ref DecodedInstruction d)
    {
        ref var i = ref d.Instruction;
        var count = i.Op1Kind == OpKind.Immediate8 ? d.Immediate & 0xFF : SseOperand(ref d, 1).AsUInt64().ToScalar();
        ref var dst = ref _ext.Xmm[XmmIndex(i.Op0Register)];
        switch (i.Mnemonic)
        {
            case Mnemonic.Psllw: dst = count > 15 ? Vector128<byte>.Zero : (dst.AsUInt16() << (int)count).AsByte(); break;
            case Mnemonic.Pslld: dst = count > 31 ? Vector128<byte>.Zero : (dst.AsUInt32() << (int)count).AsByte(); break;
            case Mnemonic.Psllq: dst = count > 63 ? Vector128<byte>.Zero : (dst.AsUInt64() << (int)count).AsByte(); break;
            case Mnemonic.Psrlw: dst = count > 15 ? Vector128<byte>.Zero : (dst.AsUInt16() >>> (int)count).AsByte(); break;
            case Mnemonic.Psrld: dst = count > 31 ? Vector128<byte>.Zero : (dst.AsUInt32() >>> (int)count).AsByte(); break;
            case Mnemonic.Psrlq: dst = count > 63 ? Vector128<byte>.Zero : (dst.AsUInt64() >>> (int)count).AsByte(); break;
            case Mnemonic.Psraw: dst = (dst.AsInt16() >> (int)Math.Min(count, 15)).AsByte(); break;
            default: dst = (dst.AsInt32() >> (int)Math.Min(count, 31)).AsByte(); break;
        }
    }

    /// <summary>PUNPCKL*/PUNPCKH*/UNPCK*: interleaves the low (or high) halves' lanes of <paramref name="lane"/> bytes, destination first.</summary>
    private void Unpack(ref DecodedInstruction d, int lane, bool high)
    {
        var source = SseOperand(ref d, 1);
        ref var dst = ref _ext.Xmm[XmmIndex(d.Instruction.Op0Register)];
        var a = dst;
        var result = Vector128<byte>.Zero;
        var half = high ? 8 : 0;
        for (var k = 0; k < 8 / lane; k++)
        {
            for (var b = 0; b < lane; b++)
            {
                result = result.WithElement((2 * k * lane) + b, a.GetElement(half + (k * lane) + b));
                result = result.WithElement((((2 * k) + 1) * lane) + b, source.GetElement(half + (k * lane) + b));
            }
        }

        dst = result;
    }

    /// <summary>PACKSSWB/PACKUSWB/PACKSSDW: the destination's signed lanes narrowed into the low half, the source's into the high half.</summary>
    private void Pack(ref DecodedInstruction d, int lane, Func<int, ushort> narrow, int outLane)
    {
        var source = SseOperand(ref d, 1);
        ref var dst = ref _ext.Xmm[XmmIndex(d.Instruction.Op0Register)];
        var count = 16 / lane;
        Span<byte> result = stackalloc byte[16];
        for (var n = 0; n < 2 * count; n++)
        {
            var from = n < count ? dst : source;
            var k = n % count;
            var value = lane == 2 ? from.AsInt16().GetElement(k) : from.AsInt32().GetElement(k);
            var narrowed = narrow(value);
            result[n * outLane] = (byte)narrowed;
            if (outLane == 2)
            {
                result[(n * 2) + 1] = (byte)(narrowed >> 8);
            }
        }

        dst = Unsafe.ReadUnaligned<Vector128<byte>>(ref result[0]);
    }
}
