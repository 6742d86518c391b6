using System.Numerics;
using System.Runtime.CompilerServices;
using Iced.Intel;

namespace Hypervisor.Vmm.Cpu;

/// <summary>
/// RFLAGS with lazy arithmetic flags: an ALU instruction records its kind, size, operands and result, and
/// CF/PF/AF/ZF/SF/OF are computed only when something reads them. Invariant: when <c>_flagOp</c> is
/// <see cref="FlagOp.Eager"/>, the six arithmetic bits of <c>_rflags</c> are the truth; otherwise they are
/// derived from the record and the bits in <c>_rflags</c> are stale.
/// </summary>
public sealed partial class X86Cpu
{
    internal const ulong FlagCf = 1UL << 0;
    internal const ulong FlagPf = 1UL << 2;
    internal const ulong FlagAf = 1UL << 4;
    internal const ulong FlagZf = 1UL << 6;
    internal const ulong FlagSf = 1UL << 7;
    internal const ulong FlagTf = 1UL << 8;
    internal const ulong FlagIf = 1UL << 9;
    internal const ulong FlagDf = 1UL << 10;
    internal const ulong FlagOf = 1UL << 11;
    internal const ulong FlagNt = 1UL << 14;
    internal const ulong FlagRf = 1UL << 16;
    internal const ulong FlagAc = 1UL << 18;
    internal const ulong FlagId = 1UL << 21;
    internal const ulong ArithmeticFlags = FlagCf | FlagPf | FlagAf | FlagZf | FlagSf | FlagOf;

    // Bits software can change with POPF at CPL 0 (IOPL, VM and VIF/VIP are not modelled).
    private const ulong WritableFlags = ArithmeticFlags | FlagTf | FlagIf | FlagDf | FlagNt | FlagAc | FlagId | (3UL << 12);

    private ulong _rflags;
    private FlagOp _flagOp;
    private int _flagBits;
    private ulong _flagA;
    private ulong _flagB;
    private ulong _flagResult;
    private bool _flagCarryIn;

    /// <summary>The recorded operation behind the lazy flags.</summary>
    private enum FlagOp : byte
    {
        Eager,
        Add,
        Adc,
        Sub,
        Sbb,
        Logic,
        Inc,
        Dec,
        Shl,
        Shr,
        Sar,

        /// <summary>A multiply: the record's b is 1 when the product overflowed the destination (CF = OF), the result its low half.</summary>
        Mul,
    }

    /// <summary>RFLAGS with the arithmetic flags computed.</summary>
    public ulong GetRflags() => (_rflags & ~ArithmeticFlags) | ComputeArithmeticFlags() | 2;

    /// <summary>Sets RFLAGS (bit 1 always reads 1).</summary>
    public void SetRflags(ulong value)
    {
        var interruptsWereOff = (_rflags & FlagIf) == 0;
        _rflags = (value & (WritableFlags | FlagRf)) | 2;
        _flagOp = FlagOp.Eager;
        if (interruptsWereOff && (_rflags & FlagIf) != 0)
        {
            _eventAt = 0;
        }
    }

    private void ResetFlags() => SetRflags(2);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong MaskOf(int bits) => bits == 64 ? ulong.MaxValue : (1UL << bits) - 1;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static long SignExtend(ulong value, int bits) => bits == 64 ? (long)value : ((long)(value << (64 - bits))) >> (64 - bits);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void SetFlags(FlagOp op, int bits, ulong a, ulong b, ulong result)
    {
        _flagOp = op;
        _flagBits = bits;
        _flagA = a;
        _flagB = b;
        _flagResult = result;
    }

    /// <summary>Turns the lazy record into real bits (before an instruction changes only some arithmetic flags).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void MaterializeFlags()
    {
        if (_flagOp != FlagOp.Eager)
        {
            _rflags = (_rflags & ~ArithmeticFlags) | ComputeArithmeticFlags();
            _flagOp = FlagOp.Eager;
        }
    }

    /// <summary>Sets the given arithmetic flags to <paramref name="set"/> within <paramref name="mask"/>, keeping the others.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void WriteFlags(ulong mask, ulong set)
    {
        MaterializeFlags();
        _rflags = (_rflags & ~mask) | (set & mask);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private ulong ComputeArithmeticFlags()
    {
        if (_flagOp == FlagOp.Eager)
        {
            return _rflags & ArithmeticFlags;
        }

        var flags = 0UL;
        if (CarryFlag()) { flags |= FlagCf; }
        if (ParityFlag()) { flags |= FlagPf; }
        if (AuxFlag()) { flags |= FlagAf; }
        if (ZeroFlag()) { flags |= FlagZf; }
        if (SignFlag()) { flags |= FlagSf; }
        if (OverflowFlag()) { flags |= FlagOf; }
        return flags;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private bool CarryFlag() => _flagOp switch
    {
        FlagOp.Eager => (_rflags & FlagCf) != 0,
        FlagOp.Add => _flagResult < _flagA,
        FlagOp.Adc => _flagCarryIn ? _flagResult <= _flagA : _flagResult < _flagA,
        FlagOp.Sub => _flagA < _flagB,
        FlagOp.Sbb => _flagCarryIn ? _flagA <= _flagB : _flagA < _flagB,
        FlagOp.Logic => false,
        FlagOp.Inc or FlagOp.Dec => _flagCarryIn,
        FlagOp.Shl => ((_flagA >> (_flagBits - (int)_flagB)) & 1) != 0,
        FlagOp.Shr => ((_flagA >> ((int)_flagB - 1)) & 1) != 0,
        FlagOp.Sar => ((SignExtend(_flagA, _flagBits) >> ((int)_flagB - 1)) & 1) != 0,
        FlagOp.Mul => _flagB != 0,
        _ => false,
    };

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private bool ZeroFlag() => _flagOp == FlagOp.Eager ? (_rflags & FlagZf) != 0 : _flagResult == 0;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private bool SignFlag() => _flagOp == FlagOp.Eager ? (_rflags & FlagSf) != 0 : ((_flagResult >> (_flagBits - 1)) & 1) != 0;

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private bool ParityFlag() => _flagOp == FlagOp.Eager ? (_rflags & FlagPf) != 0 : (BitOperations.PopCount(_flagResult & 0xFF) & 1) == 0;

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private bool AuxFlag() => _flagOp switch
    {
        FlagOp.Eager => (_rflags & FlagAf) != 0,
        FlagOp.Add or FlagOp.Adc or FlagOp.Sub or FlagOp.Sbb or FlagOp.Inc or FlagOp.Dec => ((_flagA ^ _flagB ^ _flagResult) & 0x10) != 0,
        _ => false,
    };

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private bool OverflowFlag()
    {
        var top = _flagBits - 1;
        return _flagOp switch
        {
            FlagOp.Eager => (_rflags & FlagOf) != 0,
            FlagOp.Add or FlagOp.Adc or FlagOp.Inc => ((((_flagA ^ _flagResult) & (_flagB ^ _flagResult)) >> top) & 1) != 0,
            FlagOp.Sub or FlagOp.Sbb or FlagOp.Dec => ((((_flagA ^ _flagB) & (_flagA ^ _flagResult)) >> top) & 1) != 0,
            FlagOp.Shl => (((_flagResult >> top) & 1) != 0) != CarryFlag(),
            FlagOp.Shr => ((_flagA >> top) & 1) != 0,
            FlagOp.Mul => _flagB != 0,
            _ => false,
        };
    }

    /// <summary>Evaluates a Jcc/SETcc/CMOVcc condition, straight from the compare operands after CMP/SUB.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)]
    private bool Condition(ConditionCode code)
    {
        if (_flagOp == FlagOp.Sub)
        {
            var a = _flagA;
            var b = _flagB;
            switch (code)
            {
                case ConditionCode.e: return a == b;
                case ConditionCode.ne: return a != b;
                case ConditionCode.b: return a < b;
                case ConditionCode.ae: return a >= b;
                case ConditionCode.be: return a <= b;
                case ConditionCode.a: return a > b;
                case ConditionCode.l: return SignExtend(a, _flagBits) < SignExtend(b, _flagBits);
                case ConditionCode.ge: return SignExtend(a, _flagBits) >= SignExtend(b, _flagBits);
                case ConditionCode.le: return SignExtend(a, _flagBits) <= SignExtend(b, _flagBits);
                case ConditionCode.g: return SignExtend(a, _flagBits) > SignExtend(b, _flagBits);
            }
        }

        return code switch
        {
            ConditionCode.o => OverflowFlag(),
            ConditionCode.no => !OverflowFlag(),
            ConditionCode.b => CarryFlag(),
            ConditionCode.ae => !CarryFlag(),
            ConditionCode.e => ZeroFlag(),
            ConditionCode.ne => !ZeroFlag(),
            ConditionCode.be => CarryFlag() || ZeroFlag(),
            ConditionCode.a => !CarryFlag() && !ZeroFlag(),
            ConditionCode.s => SignFlag(),
            ConditionCode.ns => !SignFlag(),
            ConditionCode.p => ParityFlag(),
            ConditionCode.np => !ParityFlag(),
            ConditionCode.l => SignFlag() != OverflowFlag(),
            ConditionCode.ge => SignFlag() == OverflowFlag(),
            ConditionCode.le => ZeroFlag() || SignFlag() != OverflowFlag(),
            ConditionCode.g => !ZeroFlag() && SignFlag() == OverflowFlag(),
            _ => false,
        };
    }
}
