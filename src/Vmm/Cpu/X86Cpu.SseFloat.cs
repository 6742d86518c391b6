using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Iced.Intel;

namespace Hypervisor.Vmm.Cpu;

/// <summary>
/// SSE/SSE2 floating point: packed and scalar add/sub/mul/div/min/max/sqrt, the reciprocal estimates, CMPccPS/PD/SS/SD,
/// (U)COMISS/SD and the conversions between integers, singles and doubles.
/// </summary>
/// <remarks>MIN/MAX return the second operand when either is a NaN or both are zero, as the SDM defines them; the
/// other operations use the host's IEEE arithmetic (round to nearest), which on an x86 host is the same instruction.
/// Every handler computes its lanes and their MXCSR flags first and writes its destination only after
/// <see cref="CommitSimdFlags"/> (an unmasked exception leaves it unchanged).</remarks>
public sealed partial class X86Cpu
{
    private bool ExecuteSseFloat(ref DecodedInstruction d)
    {
        ref var i = ref d.Instruction;
        switch (i.Mnemonic)
        {
            case Mnemonic.Addps: PackedSingle(ref d, FloatOp.Add, (a, b) => a + b); return true;
            case Mnemonic.Subps: PackedSingle(ref d, FloatOp.Sub, (a, b) => a - b); return true;
            case Mnemonic.Mulps: PackedSingle(ref d, FloatOp.Mul, (a, b) => a * b); return true;
            case Mnemonic.Divps: PackedSingle(ref d, FloatOp.Div, (a, b) => a / b); return true;
            case Mnemonic.Minps: PackedSingle(ref d, FloatOp.MinMax, (a, b) => a < b ? a : b); return true;
            case Mnemonic.Maxps: PackedSingle(ref d, FloatOp.MinMax, (a, b) => a > b ? a : b); return true;
            case Mnemonic.Sqrtps: PackedSingle(ref d, FloatOp.Sqrt, (_, b) => MathF.Sqrt(b)); return true;
            case Mnemonic.Rcpps: PackedSingle(ref d, FloatOp.Estimate, (_, b) => ReciprocalEstimate(b)); return true;
            case Mnemonic.Rsqrtps: PackedSingle(ref d, FloatOp.Estimate, (_, b) => ReciprocalSqrtEstimate(b)); return true;
            case Mnemonic.Addss: ScalarSingle(ref d, FloatOp.Add, (a, b) => a + b); return true;
            case Mnemonic.Subss: ScalarSingle(ref d, FloatOp.Sub, (a, b) => a - b); return true;
            case Mnemonic.Mulss: ScalarSingle(ref d, FloatOp.Mul, (a, b) => a * b); return true;
            case Mnemonic.Divss: ScalarSingle(ref d, FloatOp.Div, (a, b) => a / b); return true;
            case Mnemonic.Minss: ScalarSingle(ref d, FloatOp.MinMax, (a, b) => a < b ? a : b); return true;
            case Mnemonic.Maxss: ScalarSingle(ref d, FloatOp.MinMax, (a, b) => a > b ? a : b); return true;
            case Mnemonic.Sqrtss: ScalarSingle(ref d, FloatOp.Sqrt, (_, b) => MathF.Sqrt(b)); return true;
            case Mnemonic.Rcpss: ScalarSingle(ref d, FloatOp.Estimate, (_, b) => ReciprocalEstimate(b)); return true;
            case Mnemonic.Rsqrtss: ScalarSingle(ref d, FloatOp.Estimate, (_, b) => ReciprocalSqrtEstimate(b)); return true;
            case Mnemonic.Addpd: PackedDouble(ref d, FloatOp.Add, (a, b) => a + b); return true;
            case Mnemonic.Subpd: PackedDouble(ref d, FloatOp.Sub, (a, b) => a - b); return true;
            case Mnemonic.Mulpd: PackedDouble(ref d, FloatOp.Mul, (a, b) => a * b); return true;
            case Mnemonic.Divpd: PackedDouble(ref d, FloatOp.Div, (a, b) => a / b); return true;
            case Mnemonic.Minpd: PackedDouble(ref d, FloatOp.MinMax, (a, b) => a < b ? a : b); return true;
            case Mnemonic.Maxpd: PackedDouble(ref d, FloatOp.MinMax, (a, b) => a > b ? a : b); return true;
            case Mnemonic.Sqrtpd: PackedDouble(ref d, FloatOp.Sqrt, (_, b) => Math.Sqrt(b)); return true;
            case Mnemonic.Addsd: ScalarDouble(ref d, FloatOp.Add, (a, b) => a + b); return true;
            case Mnemonic.Subsd: ScalarDouble(ref d, FloatOp.Sub, (a, b) => a - b); return true;
            case Mnemonic.Mulsd: ScalarDouble(ref d, FloatOp.Mul, (a, b) => a * b); return true;
            case Mnemonic.Divsd: ScalarDouble(ref d, FloatOp.Div, (a, b) => a / b); return true;
            case Mnemonic.Minsd: ScalarDouble(ref d, FloatOp.MinMax, (a, b) => a < b ? a : b); return true;
            case Mnemonic.Maxsd: ScalarDouble(ref d, FloatOp.MinMax, (a, b) => a > b ? a : b); return true;
            case Mnemonic.Sqrtsd: ScalarDouble(ref d, FloatOp.Sqrt, (_, b) => Math.Sqrt(b)); return true;
            case Mnemonic.Cmpps: CompareSingles(ref d, 4); return true;
            case Mnemonic.Cmpss: CompareSingles(ref d, 1); return true;
            case Mnemonic.Cmppd: CompareDoubles(ref d, 2); return true;
            case Mnemonic.Cmpsd: CompareDoubles(ref d, 1); return true;
            case Mnemonic.Comiss: case Mnemonic.Ucomiss:
            {
                var a = Daz(_ext.Xmm[XmmIndex(i.Op0Register)].AsSingle().ToScalar());
                var b = Daz(SseOperand(ref d, 1).AsSingle().ToScalar());
                _ext.SimdFlags = CompareFlags(i.Mnemonic == Mnemonic.Comiss ? 1 : 0, a, b);
                CommitSimdFlags(ref d);
                SetCompareFlags(float.IsNaN(a) || float.IsNaN(b), a < b, a == b);
                return true;
            }

            case Mnemonic.Comisd: case Mnemonic.Ucomisd:
            {
                var a = Daz(_ext.Xmm[XmmIndex(i.Op0Register)].AsDouble().ToScalar());
                var b = Daz(SseOperand(ref d, 1).AsDouble().ToScalar());
                _ext.SimdFlags = CompareFlags(i.Mnemonic == Mnemonic.Comisd ? 1 : 0, a, b);
                CommitSimdFlags(ref d);
                SetCompareFlags(double.IsNaN(a) || double.IsNaN(b), a < b, a == b);
                return true;
            }

            default:
                return ExecuteSseConversion(ref d);
        }
    }

    private bool ExecuteSseConversion(ref DecodedInstruction d)
    {
        ref var i = ref d.Instruction;
        var rc = (int)(_ext.Mxcsr >> 13) & 3;
        switch (i.Mnemonic)
        {
            case Mnemonic.Cvtsi2ss:
            case Mnemonic.Cvtsi2sd:
            {
                var wide = (i.Op1Kind == OpKind.Register ? d.Reg1 >> 8 : d.MemorySize) == 8;
                var raw = ReadOperand(ref d, 1);
                var value = wide ? (long)raw : (int)raw;
                ref var dst = ref _ext.Xmm[XmmIndex(i.Op0Register)];
                if (i.Mnemonic == Mnemonic.Cvtsi2ss)
                {
                    var single = IntegerLane<float>(value);
                    CommitSimdFlags(ref d);
                    dst = dst.AsSingle().WithElement(0, single).AsByte();
                }
                else
                {
                    var converted = IntegerLane<double>(value);
                    CommitSimdFlags(ref d);
                    dst = dst.AsDouble().WithElement(0, converted).AsByte();
                }

                return true;
            }

            case Mnemonic.Cvtss2si: case Mnemonic.Cvttss2si:
            case Mnemonic.Cvtsd2si: case Mnemonic.Cvttsd2si:
            {
                var source = SseOperand(ref d, 1);
                var value = i.Mnemonic is Mnemonic.Cvtss2si or Mnemonic.Cvttss2si ? Daz(source.AsSingle().ToScalar()) : Daz(source.AsDouble().ToScalar());
                var truncate = i.Mnemonic is Mnemonic.Cvttss2si or Mnemonic.Cvttsd2si;
                var bits = (d.Reg0 >> 8) * 8;
                var converted = ToInteger(value, bits, truncate ? 3 : rc, ref _ext.SimdFlags);
                CommitSimdFlags(ref d);
                WriteGpr(d.Reg0, (ulong)converted);
                return true;
            }

            case Mnemonic.Cvtss2sd:
            {
                var converted = ConvertLane<float, double>(SseOperand(ref d, 1).AsSingle().ToScalar());
                CommitSimdFlags(ref d);
                ref var dst = ref _ext.Xmm[XmmIndex(i.Op0Register)];
                dst = dst.AsDouble().WithElement(0, converted).AsByte();
                return true;
            }

            case Mnemonic.Cvtsd2ss:
            {
                var converted = ConvertLane<double, float>(SseOperand(ref d, 1).AsDouble().ToScalar());
                CommitSimdFlags(ref d);
                ref var dst = ref _ext.Xmm[XmmIndex(i.Op0Register)];
                dst = dst.AsSingle().WithElement(0, converted).AsByte();
                return true;
            }

            case Mnemonic.Cvtps2pd:
            {
                var s = SseOperand(ref d, 1).AsSingle();
                var r0 = ConvertLane<float, double>(s.GetElement(0));
                var r1 = ConvertLane<float, double>(s.GetElement(1));
                CommitSimdFlags(ref d);
                _ext.Xmm[XmmIndex(i.Op0Register)] = Vector128.Create(r0, r1).AsByte();
                return true;
            }

            case Mnemonic.Cvtpd2ps:
            {
                var s = SseOperand(ref d, 1).AsDouble();
                var r0 = ConvertLane<double, float>(s.GetElement(0));
                var r1 = ConvertLane<double, float>(s.GetElement(1));
                CommitSimdFlags(ref d);
                _ext.Xmm[XmmIndex(i.Op0Register)] = Vector128.Create(r0, r1, 0f, 0f).AsByte();
                return true;
            }

            case Mnemonic.Cvtdq2ps:
            {
                var s = SseOperand(ref d, 1).AsInt32();
                var result = Vector128.Create(IntegerLane<float>(s.GetElement(0)), IntegerLane<float>(s.GetElement(1)),
                    IntegerLane<float>(s.GetElement(2)), IntegerLane<float>(s.GetElement(3))).AsByte();
                CommitSimdFlags(ref d);
                _ext.Xmm[XmmIndex(i.Op0Register)] = result;
                return true;
            }

            case Mnemonic.Cvtdq2pd:
            {
                var s = SseOperand(ref d, 1).AsInt32();
                _ext.Xmm[XmmIndex(i.Op0Register)] = Vector128.Create((double)s.GetElement(0), s.GetElement(1)).AsByte();
                return true;
            }

            case Mnemonic.Cvtps2dq: case Mnemonic.Cvttps2dq:
            {
                var s = SseOperand(ref d, 1).AsSingle();
                s = Vector128.Create(Daz(s.GetElement(0)), Daz(s.GetElement(1)), Daz(s.GetElement(2)), Daz(s.GetElement(3)));
                var mode = i.Mnemonic == Mnemonic.Cvttps2dq ? 3 : rc;
                var result = Vector128.Create(
                    (int)ToInteger(s.GetElement(0), 32, mode, ref _ext.SimdFlags), (int)ToInteger(s.GetElement(1), 32, mode, ref _ext.SimdFlags),
                    (int)ToInteger(s.GetElement(2), 32, mode, ref _ext.SimdFlags), (int)ToInteger(s.GetElement(3), 32, mode, ref _ext.SimdFlags)).AsByte();
                CommitSimdFlags(ref d);
                _ext.Xmm[XmmIndex(i.Op0Register)] = result;
                return true;
            }

            case Mnemonic.Cvtpd2dq: case Mnemonic.Cvttpd2dq:
            {
                var s = SseOperand(ref d, 1).AsDouble();
                s = Vector128.Create(Daz(s.GetElement(0)), Daz(s.GetElement(1)));
                var mode = i.Mnemonic == Mnemonic.Cvttpd2dq ? 3 : rc;
                var result = Vector128.Create((int)ToInteger(s.GetElement(0), 32, mode, ref _ext.SimdFlags), (int)ToInteger(s.GetElement(1), 32, mode, ref _ext.SimdFlags), 0, 0).AsByte();
                CommitSimdFlags(ref d);
                _ext.Xmm[XmmIndex(i.Op0Register)] = result;
                return true;
            }

            default:
                return false;
        }
    }

    private void PackedSingle(ref DecodedInstruction d, FloatOp kind, Func<float, float, float> op)
    {
        var b = SseOperand(ref d, 1).AsSingle();
        var a = _ext.Xmm[XmmIndex(d.Instruction.Op0Register)].AsSingle();
        var result = a;
        for (var n = 0; n < 4; n++)
        {
            result = result.WithElement(n, Lane(kind, op, a.GetElement(n), b.GetElement(n)));
        }

        CommitSimdFlags(ref d);
        _ext.Xmm[XmmIndex(d.Instruction.Op0Register)] = result.AsByte();
    }

    private void ScalarSingle(ref DecodedInstruction d, FloatOp kind, Func<float, float, float> op)
    {
        var b = SseOperand(ref d, 1).AsSingle().ToScalar();
        ref var dst = ref _ext.Xmm[XmmIndex(d.Instruction.Op0Register)];
        var r = Lane(kind, op, dst.AsSingle().ToScalar(), b);
        CommitSimdFlags(ref d);
        dst = dst.AsSingle().WithElement(0, r).AsByte();
    }

    private void PackedDouble(ref DecodedInstruction d, FloatOp kind, Func<double, double, double> op)
    {
        var b = SseOperand(ref d, 1).AsDouble();
        var a = _ext.Xmm[XmmIndex(d.Instruction.Op0Register)].AsDouble();
        var r0 = Lane(kind, op, a.GetElement(0), b.GetElement(0));
        var r1 = Lane(kind, op, a.GetElement(1), b.GetElement(1));
        CommitSimdFlags(ref d);
        _ext.Xmm[XmmIndex(d.Instruction.Op0Register)] = Vector128.Create(r0, r1).AsByte();
    }

    private void ScalarDouble(ref DecodedInstruction d, FloatOp kind, Func<double, double, double> op)
    {
        var b = SseOperand(ref d, 1).AsDouble().ToScalar();
        ref var dst = ref _ext.Xmm[XmmIndex(d.Instruction.Op0Register)];
        var r = Lane(kind, op, dst.AsDouble().ToScalar(), b);
        CommitSimdFlags(ref d);
        dst = dst.AsDouble().WithElement(0, r).AsByte();
    }



    /// <summary>CMPPS/CMPSS with predicate imm8[2:0]: each of the first <paramref name="lanes"/> singles becomes all ones or zero.</summary>
    private void CompareSingles(ref DecodedInstruction d, int lanes)
    {
        var b = SseOperand(ref d, 1).AsSingle();
        ref var dst = ref _ext.Xmm[XmmIndex(d.Instruction.Op0Register)];
        var a = dst.AsSingle();
        var result = dst.AsUInt32();
        for (var n = 0; n < lanes; n++)
        {
            var x = Daz(a.GetElement(n));
            var y = Daz(b.GetElement(n));
            _ext.SimdFlags |= CompareFlags((int)d.Immediate & 7, x, y);
            result = result.WithElement(n, ComparePredicate((int)d.Immediate & 7, x < y, x == y, float.IsNaN(x) || float.IsNaN(y)) ? uint.MaxValue : 0);
        }

        CommitSimdFlags(ref d);
        dst = result.AsByte();
    }

    /// <summary>CMPPD/CMPSD with predicate imm8[2:0].</summary>
    private void CompareDoubles(ref DecodedInstruction d, int lanes)
    {
        var b = SseOperand(ref d, 1).AsDouble();
        ref var dst = ref _ext.Xmm[XmmIndex(d.Instruction.Op0Register)];
        var a = dst.AsDouble();
        var result = dst.AsUInt64();
        for (var n = 0; n < lanes; n++)
        {
            var x = Daz(a.GetElement(n));
            var y = Daz(b.GetElement(n));
            _ext.SimdFlags |= CompareFlags((int)d.Immediate & 7, x, y);
            result = result.WithElement(n, ComparePredicate((int)d.Immediate & 7, x < y, x == y, double.IsNaN(x) || double.IsNaN(y)) ? ulong.MaxValue : 0);
        }

        CommitSimdFlags(ref d);
        dst = result.AsByte();
    }

    // EQ, LT, LE, UNORD, NEQ, NLT, NLE, ORD (SDM table 3-1, predicates 0–7); less and equal are false when unordered.
    private static bool ComparePredicate(int predicate, bool less, bool equal, bool unordered) => predicate switch
    {
        0 => equal,
        1 => less,
        2 => less || equal,
        3 => unordered,
        4 => !equal,
        5 => !less,
        6 => !(less || equal),
        _ => !unordered,
    };

    /// <summary>(U)COMIS*: ZF, PF, CF = 111 unordered, 000 greater, 001 less, 100 equal; OF, SF, AF cleared.</summary>
    private void SetCompareFlags(bool unordered, bool less, bool equal)
    {
        var flags = unordered ? FlagZf | FlagPf | FlagCf : less ? FlagCf : equal ? FlagZf : 0;
        WriteFlags(FlagZf | FlagPf | FlagCf | FlagOf | FlagSf | FlagAf, flags);
    }

    /// <summary>
    /// A float-to-integer conversion of <paramref name="bits"/> (32 or 64) with MXCSR rounding mode <paramref name="mode"/>
    /// (0 nearest-even, 1 down, 2 up, 3 toward zero); NaN or out of range gives the integer indefinite (only the sign bit set).
    /// </summary>
    private static long ToInteger(double value, int bits, int mode, ref uint flags)
    {
        var indefinite = bits == 64 ? long.MinValue : int.MinValue;
        if (double.IsNaN(value))
        {
            flags |= MxcsrInvalid;
            return bits == 64 ? indefinite : (uint)indefinite;
        }

        var rounded = mode switch
        {
            0 => Math.Round(value, MidpointRounding.ToEven),
            1 => Math.Floor(value),
            2 => Math.Ceiling(value),
            _ => Math.Truncate(value),
        };
        var limit = bits == 64 ? 9223372036854775808.0 : 2147483648.0;
        if (rounded >= limit || rounded < -limit)
        {
            flags |= MxcsrInvalid;
            return bits == 64 ? indefinite : (uint)indefinite;
        }

        if (rounded != value)
        {
            flags |= MxcsrPrecision;
        }

        return bits == 64 ? (long)rounded : (uint)(int)rounded;
    }

    // RCPPS/RSQRTPS are estimates whose exact bits differ between CPU models: the host's own estimate where it has one.
    private static float ReciprocalEstimate(float value) =>
        Sse.IsSupported ? Sse.ReciprocalScalar(Vector128.CreateScalar(value)).ToScalar() : 1f / value;

    private static float ReciprocalSqrtEstimate(float value) =>
        Sse.IsSupported ? Sse.ReciprocalSqrtScalar(Vector128.CreateScalar(value)).ToScalar() : 1f / MathF.Sqrt(value);
}
