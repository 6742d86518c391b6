using System.Numerics;
using System.Runtime.CompilerServices;

namespace Hypervisor.Vmm.Cpu;

/// <summary>
/// SSE floating-point exceptions: which of MXCSR's six flags (IE, DE, ZE, OE, UE, PE) an operation raises, their
/// accumulation over an instruction's lanes, and the unmasked case (#XM with CR4.OSXMMEXCPT, else #UD) that leaves the
/// destination unchanged; and MXCSR's rounding control, FTZ and DAZ. A lane is computed to nearest by the host, and when
/// the control bits are not the default its result is corrected from the sign of its exact error.
/// </summary>
/// <remarks>Invariant: <c>_ext.SimdFlags</c> is zero between instructions; a float handler adds its lanes' flags, then calls
/// <see cref="CommitSimdFlags"/> before it writes any destination.</remarks>
public sealed partial class X86Cpu
{
    internal const uint MxcsrInvalid = 1 << 0;
    internal const uint MxcsrDenormal = 1 << 1;
    internal const uint MxcsrDivideByZero = 1 << 2;
    internal const uint MxcsrOverflow = 1 << 3;
    internal const uint MxcsrUnderflow = 1 << 4;
    internal const uint MxcsrPrecision = 1 << 5;

    internal const uint MxcsrDaz = 1 << 6;
    internal const uint MxcsrUnderflowMask = 1 << 11;
    internal const uint MxcsrRoundingControl = 3 << 13;
    internal const uint MxcsrFtz = 1 << 15;


    /// <summary>The binary and unary float operations whose exceptions are computed.</summary>
    private enum FloatOp
    {
        Add,
        Sub,
        Mul,
        Div,
        MinMax,
        Sqrt,
        Estimate,
    }

    /// <summary>
    /// Sets the accumulated flags in MXCSR; when one of them is unmasked, raises #XM (CR4.OSXMMEXCPT) or #UD before the
    /// instruction writes its destination, as the SDM requires.
    /// </summary>
    private void CommitSimdFlags(ref DecodedInstruction d)
    {
        var flags = _ext.SimdFlags;
        _ext.SimdFlags = 0;
        if (flags == 0)
        {
            return;
        }

        _ext.Mxcsr |= flags;
        var unmasked = flags & ~(_ext.Mxcsr >> 7) & 0x3F;
        if (unmasked != 0)
        {
            if ((_cr4 & Cr4Osxmmexcpt) == 0)
            {
                RaiseUndefined(ref d, $"an unmasked SIMD floating-point exception (MXCSR flags 0x{unmasked:x}) with CR4.OSXMMEXCPT clear");
            }

            _lastFaultDetail = $"#XM at RIP 0x{_currentIp:x} ({d.Instruction}): unmasked SIMD floating-point exception, MXCSR flags 0x{unmasked:x}";
            RaiseFault(ExceptionVector.SimdFloatingPoint, null, _lastFaultDetail);
        }
    }

    /// <summary>The flags of <paramref name="result"/> = <paramref name="op"/>(<paramref name="a"/>, <paramref name="b"/>) (unary operations use <paramref name="b"/>).</summary>
    private static uint FloatFlags<T>(FloatOp op, T a, T b, T result)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        if (op == FloatOp.Estimate)
        {
            return 0;
        }

        if (op == FloatOp.Sqrt)
        {
            if (T.IsNaN(b))
            {
                return IsSignaling(b) ? MxcsrInvalid : 0;
            }

            if (T.IsNegative(b) && !T.IsZero(b))
            {
                return MxcsrInvalid;
            }

            var denormal = T.IsSubnormal(b) ? MxcsrDenormal : 0;
            return T.IsInfinity(b) || T.IsZero(b) ? denormal : denormal | Rounding(result, !Exact(op, a, b, result));
        }

        if (T.IsNaN(a) || T.IsNaN(b))
        {
            // MINPS/MAXPS signal invalid for any NaN; arithmetic only for a signalling one.
            return op == FloatOp.MinMax || IsSignaling(a) || IsSignaling(b) ? MxcsrInvalid : 0;
        }

        if (T.IsNaN(result))
        {
            return MxcsrInvalid; // inf - inf, 0 * inf, 0 / 0, inf / inf
        }

        var flags = T.IsSubnormal(a) || T.IsSubnormal(b) ? MxcsrDenormal : 0;
        if (op == FloatOp.MinMax)
        {
            return flags;
        }

        if (op == FloatOp.Div && T.IsZero(b))
        {
            // Divide by zero is reported alone (the host CPU drops DE for a denormal dividend); inf / 0 is exact.
            return T.IsFinite(a) ? MxcsrDivideByZero : flags;
        }

        if (T.IsInfinity(result))
        {
            return T.IsFinite(a) && T.IsFinite(b) ? flags | MxcsrOverflow | MxcsrPrecision : flags;
        }

        if (T.IsInfinity(a) || T.IsInfinity(b))
        {
            return flags; // finite / inf = 0 and the like: exact
        }

        return flags | Rounding(result, !Exact(op, a, b, result));
    }

    /// <summary>PE for an inexact result, with UE when it is also tiny (subnormal or flushed to zero).</summary>
    private static uint Rounding<T>(T result, bool inexact)
        where T : unmanaged, IBinaryFloatingPointIeee754<T> =>
        !inexact ? 0 : T.IsZero(result) || T.IsSubnormal(result) ? MxcsrPrecision | MxcsrUnderflow : MxcsrPrecision;

    /// <summary>True when <paramref name="result"/> is the exact value of the operation (finite operands and result).</summary>
    private static bool Exact<T>(FloatOp op, T a, T b, T result)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        if (typeof(T) == typeof(float))
        {
            // Products of two singles are exact in double, so each test is one exact comparison.
            double x = As<T, float>(a), y = As<T, float>(b), r = As<T, float>(result);
            return op switch
            {
                FloatOp.Add => TwoSumError(As<T, float>(a), As<T, float>(b), As<T, float>(result)) == 0,
                FloatOp.Sub => TwoSumError(As<T, float>(a), -As<T, float>(b), As<T, float>(result)) == 0,
                FloatOp.Mul => x * y == r,
                FloatOp.Div => r * y == x,
                _ => r * r == y,
            };
        }

        double p = As<T, double>(a), q = As<T, double>(b), s = As<T, double>(result);
        return op switch
        {
            FloatOp.Add => TwoSumError(p, q, s) == 0,
            FloatOp.Sub => TwoSumError(p, -q, s) == 0,
            FloatOp.Mul => ExactProduct(p, q, s),
            FloatOp.Div => ExactProduct(s, q, p),
            _ => ExactProduct(s, s, q),
        };
    }

    /// <summary>True when x·y = z exactly (finite doubles).</summary>
    private static bool ExactProduct(double x, double y, double z) => ProductResidual(x, y, z) == 0;

    /// <summary>
    /// x·y − z with the sign of the exact value (zero exactly when x·y = z; finite doubles). One FMA gives it unless it is
    /// below the denormal range, so tiny factors are first scaled by 2^600 (exact: a power of two), and z by the same total.
    /// </summary>
    private static double ProductResidual(double x, double y, double z)
    {
        var tiny = Math.ScaleB(1.0, -400);
        var exponent = 0;
        var xs = x;
        var ys = y;
        if (xs != 0 && Math.Abs(xs) < tiny) { xs = Math.ScaleB(xs, 600); exponent += 600; }
        if (ys != 0 && Math.Abs(ys) < tiny) { ys = Math.ScaleB(ys, 600); exponent += 600; }
        var zs = Math.ScaleB(z, exponent);
        if (double.IsInfinity(zs))
        {
            xs = x;
            ys = y;
            zs = z;
        }

        return Math.FusedMultiplyAdd(xs, ys, -zs);
    }

    /// <summary>The rounding error of <paramref name="sum"/> = a + b (Knuth's TwoSum: exact without overflow).</summary>
    private static T TwoSumError<T>(T a, T b, T sum)
        where T : IBinaryFloatingPointIeee754<T>
    {
        var bVirtual = sum - a;
        var aVirtual = sum - bVirtual;
        return (a - aVirtual) + (b - bVirtual);
    }

    /// <summary>
    /// One lane of an arithmetic instruction: DAZ on the inputs, the operation (round to nearest), its flags, then MXCSR's
    /// rounding control and FTZ applied to the result. The default MXCSR takes the first branch only.
    /// </summary>
    private T Lane<T>(FloatOp kind, Func<T, T, T> op, T a, T b)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        var control = _ext.Mxcsr & (MxcsrDaz | MxcsrRoundingControl | MxcsrFtz);
        if (control == 0 || kind is FloatOp.Estimate)
        {
            var nearest = op(a, b);
            _ext.SimdFlags |= FloatFlags(kind, a, b, nearest);
            return nearest;
        }

        if ((control & MxcsrDaz) != 0)
        {
            a = DenormalAsZero(a);
            b = DenormalAsZero(b);
        }

        var r = op(a, b);
        var flags = FloatFlags(kind, a, b, r);
        var mode = (int)(control >> 13) & 3;
        if (mode != 0 && kind != FloatOp.MinMax && (flags & (MxcsrInvalid | MxcsrDivideByZero)) == 0 && !T.IsNaN(r))
        {
            if ((flags & MxcsrOverflow) != 0)
            {
                r = OverflowResult(r, mode);
            }
            else if ((flags & MxcsrPrecision) != 0)
            {
                r = Directed(r, ErrorSign(kind, a, b, r), mode);
                flags = (flags & ~MxcsrUnderflow) | (T.IsZero(r) || T.IsSubnormal(r) ? MxcsrUnderflow : 0);
            }
            else if (mode == 1 && T.IsZero(r) && kind is FloatOp.Add or FloatOp.Sub)
            {
                // An exact zero sum is -0 when rounding down, unless both addends are +0.
                var addend = kind == FloatOp.Sub ? -b : b;
                if (!(T.IsZero(a) && T.IsPositive(a) && T.IsZero(addend) && T.IsPositive(addend)))
                {
                    r = -T.Zero;
                }
            }
        }

        return FlushIfUnderflow(r, flags);
    }

    /// <summary>A value read by a compare or conversion: zero for a denormal under MXCSR.DAZ.</summary>
    private T Daz<T>(T value)
        where T : unmanaged, IBinaryFloatingPointIeee754<T> => (_ext.Mxcsr & MxcsrDaz) != 0 ? DenormalAsZero(value) : value;

    /// <summary>A single/double conversion lane: DAZ, the flags, MXCSR's rounding control and FTZ.</summary>
    private TTo ConvertLane<TFrom, TTo>(TFrom value)
        where TFrom : unmanaged, IBinaryFloatingPointIeee754<TFrom>
        where TTo : unmanaged, IBinaryFloatingPointIeee754<TTo>
    {
        value = Daz(value);
        var r = TTo.CreateTruncating(value);
        var flags = ConvertFlags(value, r);
        var mode = (int)(_ext.Mxcsr >> 13) & 3;
        if (mode != 0 && (flags & MxcsrInvalid) == 0 && !TFrom.IsNaN(value))
        {
            if ((flags & MxcsrOverflow) != 0)
            {
                r = OverflowResult(r, mode);
            }
            else if ((flags & MxcsrPrecision) != 0)
            {
                r = Directed(r, double.CreateTruncating(value).CompareTo(double.CreateTruncating(r)), mode);
                flags = (flags & ~MxcsrUnderflow) | (TTo.IsZero(r) || TTo.IsSubnormal(r) ? MxcsrUnderflow : 0);
            }
        }

        return FlushIfUnderflow(r, flags);
    }

    /// <summary>An integer-to-float conversion lane: PE when inexact, rounded by MXCSR's rounding control.</summary>
    private TTo IntegerLane<TTo>(long value)
        where TTo : unmanaged, IBinaryFloatingPointIeee754<TTo>
    {
        var r = TTo.CreateTruncating(value);
        var error = ((Int128)value).CompareTo(Int128.CreateTruncating(double.CreateTruncating(r)));
        if (error == 0)
        {
            return r;
        }

        _ext.SimdFlags |= MxcsrPrecision;
        return Directed(r, error, (int)(_ext.Mxcsr >> 13) & 3);
    }

    private T FlushIfUnderflow<T>(T r, uint flags)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        if ((_ext.Mxcsr & MxcsrFtz) != 0 && (_ext.Mxcsr & MxcsrUnderflowMask) != 0 && (flags & MxcsrUnderflow) != 0)
        {
            r = T.CopySign(T.Zero, r);
            flags |= MxcsrUnderflow | MxcsrPrecision;
        }

        _ext.SimdFlags |= flags;
        return r;
    }

    private static T DenormalAsZero<T>(T value)
        where T : unmanaged, IBinaryFloatingPointIeee754<T> => T.IsSubnormal(value) ? T.CopySign(T.Zero, value) : value;

    /// <summary>The overflowed result under a directed rounding mode: the largest finite value where rounding goes toward zero.</summary>
    private static T OverflowResult<T>(T infinity, int mode)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        var positive = T.IsPositive(infinity);
        return mode switch
        {
            1 => positive ? T.BitDecrement(infinity) : infinity,
            2 => positive ? infinity : T.BitIncrement(infinity),
            _ => positive ? T.BitDecrement(infinity) : T.BitIncrement(infinity),
        };
    }

    /// <summary>The nearest-rounded <paramref name="r"/> moved one step for rounding mode 1 (down), 2 (up) or 3 (toward zero), given the sign of exact − r.</summary>
    private static T Directed<T>(T r, int errorSign, int mode)
        where T : unmanaged, IBinaryFloatingPointIeee754<T> => mode switch
        {
            1 when errorSign < 0 => T.BitDecrement(r),
            2 when errorSign > 0 => T.BitIncrement(r),
            3 when errorSign < 0 && T.IsPositive(r) && !T.IsZero(r) => T.BitDecrement(r),
            3 when errorSign > 0 && T.IsNegative(r) && !T.IsZero(r) => T.BitIncrement(r),
            _ => r,
        };

    /// <summary>The sign of (exact result − <paramref name="r"/>) for a finite, inexact operation.</summary>
    private static int ErrorSign<T>(FloatOp kind, T a, T b, T r)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        if (kind is FloatOp.Add or FloatOp.Sub)
        {
            return Math.Sign(double.CreateTruncating(TwoSumError(a, kind == FloatOp.Sub ? -b : b, r)));
        }

        if (typeof(T) == typeof(float))
        {
            // Products of singles are exact in double.
            double x = As<T, float>(a), y = As<T, float>(b), z = As<T, float>(r);
            return kind switch
            {
                FloatOp.Mul => (x * y).CompareTo(z),
                FloatOp.Div => x.CompareTo(z * y) * Math.Sign(y),
                _ => y.CompareTo(z * z),
            };
        }

        double p = As<T, double>(a), q = As<T, double>(b), s = As<T, double>(r);
        return kind switch
        {
            FloatOp.Mul => Math.Sign(ProductResidual(p, q, s)),
            FloatOp.Div => -Math.Sign(ProductResidual(s, q, p)) * Math.Sign(q),
            _ => -Math.Sign(ProductResidual(s, s, q)),
        };
    }

    /// <summary>CMPccPS/PD/SS/SD: LT, LE, NLT, NLE signal invalid for any NaN, the others for a signalling one; DE for a denormal.</summary>
    private static uint CompareFlags<T>(int predicate, T a, T b)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        if (T.IsNaN(a) || T.IsNaN(b))
        {
            return predicate is 1 or 2 or 5 or 6 || IsSignaling(a) || IsSignaling(b) ? MxcsrInvalid : 0;
        }

        return T.IsSubnormal(a) || T.IsSubnormal(b) ? MxcsrDenormal : 0;
    }

    /// <summary>A conversion between single and double: IE for a signalling NaN, DE for a denormal source, then the rounding flags.</summary>
    private static uint ConvertFlags<TFrom, TTo>(TFrom value, TTo result)
        where TFrom : unmanaged, IBinaryFloatingPointIeee754<TFrom>
        where TTo : unmanaged, IBinaryFloatingPointIeee754<TTo>
    {
        if (TFrom.IsNaN(value))
        {
            return IsSignaling(value) ? MxcsrInvalid : 0;
        }

        var flags = TFrom.IsSubnormal(value) ? MxcsrDenormal : 0;
        if (TTo.IsInfinity(result) && TFrom.IsFinite(value))
        {
            return flags | MxcsrOverflow | MxcsrPrecision;
        }

        var exact = double.CreateTruncating(value) == double.CreateTruncating(result);
        return flags | Rounding(result, !exact);
    }

    private static bool IsSignaling<T>(T value)
        where T : unmanaged, IBinaryFloatingPointIeee754<T> =>
        typeof(T) == typeof(float)
            ? float.IsNaN(As<T, float>(value)) && (BitConverter.SingleToUInt32Bits(As<T, float>(value)) & 0x40_0000) == 0
            : double.IsNaN(As<T, double>(value)) && (BitConverter.DoubleToUInt64Bits(As<T, double>(value)) & (1UL << 51)) == 0;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static TTo As<TFrom, TTo>(TFrom value)
        where TFrom : unmanaged
        where TTo : unmanaged => Unsafe.As<TFrom, TTo>(ref value);
}
