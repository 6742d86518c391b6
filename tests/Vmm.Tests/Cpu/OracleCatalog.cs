using Iced.Intel;

namespace Hypervisor.Vmm.Tests.Cpu;

/// <summary>
/// The instruction forms checked against the host CPU, with the SDM's defined-flag rules (Intel SDM Vol. 2 and
/// Appendix A "EFLAGS Cross-Reference"): undefined flags are masked, unaffected flags stay defined (they must
/// keep their input value).
/// </summary>
internal static class OracleCatalog
{
    public const ulong Cf = 1UL << 0;
    public const ulong Pf = 1UL << 2;
    public const ulong Af = 1UL << 4;
    public const ulong Zf = 1UL << 6;
    public const ulong Sf = 1UL << 7;
    public const ulong Of = 1UL << 11;
    public const ulong Arithmetic = Cf | Pf | Af | Zf | Sf | Of;

    private static readonly int[] Widths = [8, 16, 32, 64];

    private static readonly ulong[] Boundaries =
    [
        0, 1, 2, 0x0F, 0x10, 0x7F, 0x80, 0xFF, 0x100, 0x7FFF, 0x8000, 0xFFFF, 0x7FFF_FFFF, 0x8000_0000, 0xFFFF_FFFF,
        0x1_0000_0000, 0x7FFF_FFFF_FFFF_FFFF, 0x8000_0000_0000_0000, ulong.MaxValue, 0xFFFF_FFFF_FFFF_FF80,
    ];

    private static readonly string[] Conditions = ["o", "no", "b", "ae", "e", "ne", "be", "a", "s", "ns", "p", "np", "l", "ge", "le", "g"];

    /// <summary>Every case.</summary>
    public static IEnumerable<OracleCase> All()
    {
        foreach (var w in Widths)
        {
            foreach (var mnemonic in new[] { "Add", "Adc", "Sub", "Sbb", "Cmp" })
            {
                yield return Binary(mnemonic, w, static _ => Arithmetic);
                yield return Immediate(mnemonic, w, static _ => Arithmetic);
            }

            foreach (var mnemonic in new[] { "And", "Or", "Xor", "Test" })
            {
                yield return Binary(mnemonic, w, static _ => Arithmetic & ~Af);
                yield return Immediate(mnemonic, w, static _ => Arithmetic & ~Af);
            }

            foreach (var mnemonic in new[] { "Inc", "Dec", "Neg", "Not" })
            {
                yield return Unary(mnemonic, w);
            }

            foreach (var mnemonic in new[] { "Shl", "Shr", "Sar", "Rol", "Ror", "Rcl", "Rcr" })
            {
                yield return Shift(mnemonic, w, "CL", 0);
                yield return Shift(mnemonic, w, "1", 1);
                yield return Shift(mnemonic, w, "imm8", 3);
                yield return Shift(mnemonic, w, "imm8", w - 1);
            }

            yield return MulDiv("Mul", w);
            yield return MulDiv("Imul", w);
            yield return MulDiv("Div", w);
            yield return MulDiv("Idiv", w);
            yield return new OracleCase($"xadd {R(w, 'a')},{R(w, 'c')}", a => a.AddInstruction(Instruction.Create(CodeOf($"Xadd_rm{w}_r{w}"), Reg(w, 'a'), Reg(w, 'c'))), static _ => Arithmetic, w == 64);
            yield return new OracleCase($"cmpxchg {R(w, 'c')},{R(w, 'd')}", a => a.AddInstruction(Instruction.Create(CodeOf($"Cmpxchg_rm{w}_r{w}"), Reg(w, 'c'), Reg(w, 'd'))), static _ => Arithmetic, w == 64)
            {
                Generate = r => Equalish(r),
            };
            if (w == 8)
            {
                continue;
            }

            yield return new OracleCase($"imul {R(w, 'a')},{R(w, 'c')}", a => a.AddInstruction(Instruction.Create(CodeOf($"Imul_r{w}_rm{w}"), Reg(w, 'a'), Reg(w, 'c'))), static _ => Cf | Of, w == 64);
            foreach (var immediate in new[] { -3, 0x1234 })
            {
                var code = CodeOf($"Imul_r{w}_rm{w}_imm{Math.Min(w, 32)}");
                yield return new OracleCase($"imul {R(w, 'a')},{R(w, 'c')},{immediate}", a => a.AddInstruction(Instruction.Create(code, Reg(w, 'a'), Reg(w, 'c'), immediate)), static _ => Cf | Of, w == 64);
            }

            foreach (var mnemonic in new[] { "Bt", "Bts", "Btr", "Btc" })
            {
                yield return new OracleCase($"{mnemonic.ToLowerInvariant()} {R(w, 'a')},{R(w, 'c')}", a => a.AddInstruction(Instruction.Create(CodeOf($"{mnemonic}_rm{w}_r{w}"), Reg(w, 'a'), Reg(w, 'c'))), static _ => Cf | Zf, w == 64);
                yield return new OracleCase($"{mnemonic.ToLowerInvariant()} {R(w, 'a')},{w - 3}", a => a.AddInstruction(Instruction.Create(CodeOf($"{mnemonic}_rm{w}_imm8"), Reg(w, 'a'), w - 3)), static _ => Cf | Zf, w == 64);
            }

            var mask = Mask(w);
            yield return new OracleCase($"bsf {R(w, 'a')},{R(w, 'c')}", a => a.AddInstruction(Instruction.Create(CodeOf($"Bsf_r{w}_rm{w}"), Reg(w, 'a'), Reg(w, 'c'))), static _ => Zf, w == 64)
            {
                ResultUndefined = o => (o.Rcx & mask) == 0,
                Generate = r => Sparse(r),
            };
            yield return new OracleCase($"bsr {R(w, 'a')},{R(w, 'c')}", a => a.AddInstruction(Instruction.Create(CodeOf($"Bsr_r{w}_rm{w}"), Reg(w, 'a'), Reg(w, 'c'))), static _ => Zf, w == 64)
            {
                ResultUndefined = o => (o.Rcx & mask) == 0,
                Generate = r => Sparse(r),
            };
            yield return new OracleCase($"popcnt {R(w, 'a')},{R(w, 'c')}", a => a.AddInstruction(Instruction.Create(CodeOf($"Popcnt_r{w}_rm{w}"), Reg(w, 'a'), Reg(w, 'c'))), static _ => Arithmetic, w == 64)
            {
                Generate = r => Sparse(r),
            };
            yield return new OracleCase($"lzcnt {R(w, 'a')},{R(w, 'c')}", a => a.AddInstruction(Instruction.Create(CodeOf($"Lzcnt_r{w}_rm{w}"), Reg(w, 'a'), Reg(w, 'c'))), static _ => Cf | Zf, w == 64)
            {
                Generate = r => Sparse(r),
            };
            yield return new OracleCase($"tzcnt {R(w, 'a')},{R(w, 'c')}", a => a.AddInstruction(Instruction.Create(CodeOf($"Tzcnt_r{w}_rm{w}"), Reg(w, 'a'), Reg(w, 'c'))), static _ => Cf | Zf, w == 64)
            {
                Generate = r => Sparse(r),
            };
            foreach (var mnemonic in new[] { "Shld", "Shrd" })
            {
                yield return DoubleShift(mnemonic, w, useCl: true, 0);
                yield return DoubleShift(mnemonic, w, useCl: false, 1);
                yield return DoubleShift(mnemonic, w, useCl: false, 5);
            }

            foreach (var condition in Conditions)
            {
                var code = CodeOf($"Cmov{condition}_r{w}_rm{w}");
                yield return new OracleCase($"cmov{condition} {R(w, 'a')},{R(w, 'c')}", a => a.AddInstruction(Instruction.Create(code, Reg(w, 'a'), Reg(w, 'c'))), static _ => Arithmetic, w == 64);
            }

            if (w >= 32)
            {
                yield return new OracleCase($"bswap {R(w, 'a')}", a => a.AddInstruction(Instruction.Create(CodeOf($"Bswap_r{w}"), Reg(w, 'a'))), static _ => Arithmetic, w == 64);
            }
        }

        foreach (var (destination, source) in new[] { (Register.AH, Register.CH), (Register.DH, Register.AL), (Register.CL, Register.DH), (Register.DH, Register.CH) })
        {
            foreach (var mnemonic in new[] { "Add", "Adc", "Sub", "Sbb", "Cmp", "And", "Or", "Xor" })
            {
                var flags = mnemonic is "And" or "Or" or "Xor" ? Arithmetic & ~Af : Arithmetic;
                yield return new OracleCase($"{mnemonic.ToLowerInvariant()} {Name(destination)},{Name(source)}", a => a.AddInstruction(Instruction.Create(CodeOf($"{mnemonic}_rm8_r8"), destination, source)), _ => flags, false);
            }
        }

        yield return new OracleCase("inc ah", a => a.AddInstruction(Instruction.Create(Code.Inc_rm8, Register.AH)), static _ => Arithmetic, false);
        yield return new OracleCase("neg dh", a => a.AddInstruction(Instruction.Create(Code.Neg_rm8, Register.DH)), static _ => Arithmetic, false);
        yield return new OracleCase("shl ch,cl", a => a.AddInstruction(Instruction.Create(Code.Shl_rm8_CL, Register.CH, Register.CL)), o => ShiftFlags(8, (int)(o.Rcx & 0xFF), rotate: false), false)
        {
            Generate = ShiftOperands,
        };
        yield return new OracleCase("mul ah", a => a.AddInstruction(Instruction.Create(Code.Mul_rm8, Register.AH)), static _ => Cf | Of, false);
        yield return new OracleCase("xchg ah,cl", a => a.AddInstruction(Instruction.Create(Code.Xchg_rm8_r8, Register.AH, Register.CL)), static _ => Arithmetic, false);
        foreach (var code in new[] { Code.Cbw, Code.Cwde, Code.Cwd, Code.Cdq, Code.Lahf, Code.Sahf, Code.Clc, Code.Stc, Code.Cmc })
        {
            yield return new OracleCase(code.ToString().ToLowerInvariant(), a => a.AddInstruction(Instruction.Create(code)), static _ => Arithmetic, false);
        }

        foreach (var code in new[] { Code.Cdqe, Code.Cqo })
        {
            yield return new OracleCase(code.ToString().ToLowerInvariant(), a => a.AddInstruction(Instruction.Create(code)), static _ => Arithmetic, true);
        }

        foreach (var condition in Conditions)
        {
            var setcc = CodeOf($"Set{condition}_rm8");
            yield return new OracleCase($"set{condition} dl", a => a.AddInstruction(Instruction.Create(setcc, Register.DL)), static _ => Arithmetic, false);
            foreach (var w in Widths)
            {
                var compare = CodeOf($"Cmp_rm{w}_r{w}");
                yield return new OracleCase($"cmp {R(w, 'a')},{R(w, 'c')}; set{condition} dl", a =>
                {
                    a.AddInstruction(Instruction.Create(compare, Reg(w, 'a'), Reg(w, 'c')));
                    a.AddInstruction(Instruction.Create(setcc, Register.DL));
                }, static _ => Arithmetic, w == 64)
                {
                    Generate = r => Equalish(r),
                };
            }

            yield return new OracleCase($"add eax,ecx; set{condition} dl", a =>
            {
                a.AddInstruction(Instruction.Create(Code.Add_rm32_r32, Register.EAX, Register.ECX));
                a.AddInstruction(Instruction.Create(setcc, Register.DL));
            }, static _ => Arithmetic, false);
            yield return new OracleCase($"sbb ax,cx; set{condition} dl", a =>
            {
                a.AddInstruction(Instruction.Create(Code.Sbb_rm16_r16, Register.AX, Register.CX));
                a.AddInstruction(Instruction.Create(setcc, Register.DL));
            }, static _ => Arithmetic, false);
        }
    }

    /// <summary>Boundary values and random words in RAX/RCX/RDX, random arithmetic flags.</summary>
    public static OracleOperands GeneralOperands(Random random) =>
        new(Word(random), Word(random), Word(random), RandomFlags(random));

    /// <summary>The SDM's defined flags after a shift or rotate of a <paramref name="width"/>-bit operand by <paramref name="rawCount"/>.</summary>
    public static ulong ShiftFlags(int width, int rawCount, bool rotate)
    {
        var count = rawCount & (width == 64 ? 63 : 31);
        if (count == 0)
        {
            return Arithmetic;
        }

        var defined = rotate ? Arithmetic : Arithmetic & ~Af;
        if (count > 1)
        {
            defined &= ~Of;
        }

        if (!rotate && count >= width)
        {
            defined &= ~Cf;
        }

        return defined;
    }

    private static OracleCase Binary(string mnemonic, int w, Func<OracleOperands, ulong> flags) =>
        new($"{mnemonic.ToLowerInvariant()} {R(w, 'a')},{R(w, 'c')}", a => a.AddInstruction(Instruction.Create(CodeOf($"{mnemonic}_rm{w}_r{w}"), Reg(w, 'a'), Reg(w, 'c'))), flags, w == 64)
        {
            Generate = r => Equalish(r),
        };

    private static OracleCase Immediate(string mnemonic, int w, Func<OracleOperands, ulong> flags)
    {
        var immediate = w == 8 ? 0x81 : w == 16 ? 0x8001 : unchecked((int)0x8000_0001);
        var code = CodeOf($"{mnemonic}_rm{w}_imm{Math.Min(w, 32)}");
        return new($"{mnemonic.ToLowerInvariant()} {R(w, 'c')},0x{immediate:x}", a => a.AddInstruction(Instruction.Create(code, Reg(w, 'c'), immediate)), flags, w == 64);
    }

    private static OracleCase Unary(string mnemonic, int w) =>
        new($"{mnemonic.ToLowerInvariant()} {R(w, 'a')}", a => a.AddInstruction(Instruction.Create(CodeOf($"{mnemonic}_rm{w}"), Reg(w, 'a'))), static _ => Arithmetic, w == 64);

    private static OracleCase Shift(string mnemonic, int w, string form, int immediate)
    {
        var rotate = mnemonic.StartsWith('R');
        var code = CodeOf($"{mnemonic}_rm{w}_{form}");
        var text = form switch { "CL" => "cl", "1" => "1", _ => immediate.ToString(System.Globalization.CultureInfo.InvariantCulture) };
        var name = $"{mnemonic.ToLowerInvariant()} {R(w, 'a')},{text}{(form == "1" ? " (D1 form)" : "")}";
        Action<Assembler> emit = form switch
        {
            "CL" => a => a.AddInstruction(Instruction.Create(code, Reg(w, 'a'), Register.CL)),
            "1" => a => a.AddInstruction(Instruction.Create(code, Reg(w, 'a'), 1)),
            _ => a => a.AddInstruction(Instruction.Create(code, Reg(w, 'a'), immediate)),
        };
        return new OracleCase(name, emit, o => ShiftFlags(w, form == "CL" ? (int)(o.Rcx & 0xFF) : immediate, rotate), w == 64)
        {
            Generate = ShiftOperands,
        };
    }

    private static OracleCase DoubleShift(string mnemonic, int w, bool useCl, int immediate)
    {
        var code = CodeOf($"{mnemonic}_rm{w}_r{w}_{(useCl ? "CL" : "imm8")}");
        Action<Assembler> emit = useCl
            ? a => a.AddInstruction(Instruction.Create(code, Reg(w, 'a'), Reg(w, 'd'), Register.CL))
            : a => a.AddInstruction(Instruction.Create(code, Reg(w, 'a'), Reg(w, 'd'), immediate));
        int Count(OracleOperands o) => (useCl ? (int)(o.Rcx & 0xFF) : immediate) & (w == 64 ? 63 : 31);
        return new OracleCase($"{mnemonic.ToLowerInvariant()} {R(w, 'a')},{R(w, 'd')},{(useCl ? "cl" : immediate.ToString(System.Globalization.CultureInfo.InvariantCulture))}", emit, o =>
        {
            var count = Count(o);
            return count == 0 ? Arithmetic : count == 1 ? Arithmetic & ~Af : Arithmetic & ~Af & ~Of;
        }, w == 64)
        {
            Generate = ShiftOperands,
            IsValid = o => Count(o) <= w,
        };
    }

    private static OracleCase MulDiv(string mnemonic, int w)
    {
        var code = CodeOf($"{mnemonic}_rm{w}");
        var divide = mnemonic.Contains("div", StringComparison.OrdinalIgnoreCase);
        var signed = mnemonic.StartsWith('I');
        var emit = (Action<Assembler>)(a => a.AddInstruction(Instruction.Create(code, Reg(w, 'c'))));
        var name = $"{mnemonic.ToLowerInvariant()} {R(w, 'c')}";
        if (!divide)
        {
            return new OracleCase(name, emit, static _ => Cf | Of, w == 64);
        }

        return new OracleCase(name, emit, static _ => 0, w == 64)
        {
            Generate = r => DivideOperands(r, w, signed),
            IsValid = o => DivisionFits(o, w, signed),
        };
    }

    private static OracleOperands DivideOperands(Random random, int w, bool signed)
    {
        for (var attempt = 0; ; attempt++)
        {
            var operands = new OracleOperands(Word(random), Word(random), random.Next(3) switch
            {
                0 => 0,
                1 => ulong.MaxValue,
                _ => Word(random) >> random.Next(64),
            }, RandomFlags(random));
            if (DivisionFits(operands, w, signed) || attempt > 200)
            {
                return operands;
            }
        }
    }

    private static bool DivisionFits(OracleOperands o, int w, bool signed)
    {
        var mask = Mask(w);
        var divisor = o.Rcx & mask;
        if (divisor == 0)
        {
            return false;
        }

        var dividend = w == 8 ? (UInt128)(o.Rax & 0xFFFF) : ((UInt128)(o.Rdx & mask) << w) | (o.Rax & mask);
        if (!signed)
        {
            return dividend / divisor <= mask;
        }

        var signedDividend = (Int128)(dividend << (128 - (2 * w))) >> (128 - (2 * w));
        var signedDivisor = (Int128)(long)(divisor << (64 - w)) >> (64 - w);
        var quotient = signedDividend / signedDivisor;
        var limit = (Int128)1 << (w - 1);
        return quotient >= -limit && quotient < limit;
    }

    private static OracleOperands ShiftOperands(Random random) =>
        new(Word(random), (Word(random) & ~0xFFUL) | (uint)random.Next(random.Next(2) == 0 ? 70 : 256), Word(random), RandomFlags(random));

    private static OracleOperands Equalish(Random random)
    {
        var a = Word(random);
        var c = random.Next(4) == 0 ? a : Word(random);
        var d = Word(random);
        return new OracleOperands(a, c, d, RandomFlags(random));
    }

    private static OracleOperands Sparse(Random random)
    {
        var value = random.Next(4) switch
        {
            0 => 0UL,
            1 => 1UL << random.Next(64),
            2 => Word(random),
            _ => Word(random) >> random.Next(64),
        };
        return new OracleOperands(Word(random), value, Word(random), RandomFlags(random));
    }

    private static ulong Word(Random random) => random.Next(3) == 0 ? Boundaries[random.Next(Boundaries.Length)] : (ulong)random.NextInt64() ^ (random.Next(2) == 0 ? 0UL : 1UL << 63);

    private static ulong RandomFlags(Random random)
    {
        var flags = 2UL;
        foreach (var bit in new[] { Cf, Pf, Af, Zf, Sf, Of })
        {
            if (random.Next(2) == 1)
            {
                flags |= bit;
            }
        }

        return flags;
    }

    private static ulong Mask(int w) => w == 64 ? ulong.MaxValue : (1UL << w) - 1;

    private static Code CodeOf(string name) => Enum.Parse<Code>(name);

    private static Register Reg(int w, char which)
    {
        var index = which switch { 'a' => 0, 'c' => 1, _ => 2 };
        return w switch
        {
            8 => Register.AL + index,
            16 => Register.AX + index,
            32 => Register.EAX + index,
            _ => Register.RAX + index,
        };
    }

    private static string R(int w, char which) => Name(Reg(w, which));

    private static string Name(Register register) => register.ToString().ToLowerInvariant();
}
