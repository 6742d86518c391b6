using Iced.Intel;

namespace Hypervisor.Vmm.Cpu;

/// <summary>Chooses the <see cref="Op"/> of a decoded instruction (decode time only, never per execution).</summary>
internal static class OpClassifier
{
    private static readonly string[] ConditionSuffixes = ["o", "no", "b", "ae", "e", "ne", "be", "a", "s", "ns", "p", "np", "l", "ge", "le", "g"];

    // The legacy SSE/SSE2 mnemonics the interpreter implements (X86Cpu.Sse*.cs); MOVSD and CMPSD share theirs with the
    // string instructions and are told apart by their code.
    private static readonly string[] SseMnemonics =
    [
        "Movaps", "Movups", "Movapd", "Movupd", "Movdqa", "Movdqu", "Movntps", "Movntpd", "Movntdq", "Movss", "Movd", "Movq",
        "Movlps", "Movlpd", "Movhps", "Movhpd", "Movhlps", "Movlhps", "Movmskps", "Movmskpd", "Pmovmskb", "Maskmovdqu",
        "Pand", "Andps", "Andpd", "Pandn", "Andnps", "Andnpd", "Por", "Orps", "Orpd", "Pxor", "Xorps", "Xorpd",
        "Paddb", "Paddw", "Paddd", "Paddq", "Psubb", "Psubw", "Psubd", "Psubq", "Paddsb", "Paddsw", "Paddusb", "Paddusw",
        "Psubsb", "Psubsw", "Psubusb", "Psubusw", "Pmullw", "Pmulhw", "Pmulhuw", "Pmuludq", "Pmaddwd", "Psadbw", "Pavgb",
        "Pavgw", "Pminub", "Pmaxub", "Pminsw", "Pmaxsw", "Pcmpeqb", "Pcmpeqw", "Pcmpeqd", "Pcmpgtb", "Pcmpgtw", "Pcmpgtd",
        "Psllw", "Pslld", "Psllq", "Psrlw", "Psrld", "Psrlq", "Psraw", "Psrad", "Pslldq", "Psrldq", "Pshufd", "Pshuflw",
        "Pshufhw", "Shufps", "Shufpd", "Punpcklbw", "Punpcklwd", "Punpckldq", "Punpcklqdq", "Punpckhbw", "Punpckhwd",
        "Punpckhdq", "Punpckhqdq", "Unpcklps", "Unpcklpd", "Unpckhps", "Unpckhpd", "Packsswb", "Packuswb", "Packssdw",
        "Pextrw", "Pinsrw",
        "Addps", "Subps", "Mulps", "Divps", "Minps", "Maxps", "Sqrtps", "Rcpps", "Rsqrtps", "Addss", "Subss", "Mulss",
        "Divss", "Minss", "Maxss", "Sqrtss", "Rcpss", "Rsqrtss", "Addpd", "Subpd", "Mulpd", "Divpd", "Minpd", "Maxpd",
        "Sqrtpd", "Addsd", "Subsd", "Mulsd", "Divsd", "Minsd", "Maxsd", "Sqrtsd", "Cmpps", "Cmpss", "Cmppd", "Comiss",
        "Ucomiss", "Comisd", "Ucomisd", "Cvtsi2ss", "Cvtsi2sd", "Cvtss2si", "Cvttss2si", "Cvtsd2si", "Cvttsd2si",
        "Cvtss2sd", "Cvtsd2ss", "Cvtps2pd", "Cvtpd2ps", "Cvtdq2ps", "Cvtdq2pd", "Cvtps2dq", "Cvttps2dq", "Cvtpd2dq",
        "Cvttpd2dq",
    ];

    private static readonly Op[] ByMnemonic = BuildTable();

    /// <summary>The handler for <paramref name="instruction"/>; <see cref="Op.Unsupported"/> raises #UD.</summary>
    public static Op Classify(in Instruction instruction)
    {
        var op = ByMnemonic[(int)instruction.Mnemonic];
        switch (op)
        {
            case Op.Mov:
                if (IsRegisterOperand(instruction, 0, out var r0))
                {
                    if (r0.IsSegmentRegister()) { return Op.MovToSeg; }
                    if (r0.IsCR()) { return Op.MovToCr; }
                    if (r0.IsDR()) { return Op.MovToDr; }
                }

                if (IsRegisterOperand(instruction, 1, out var r1))
                {
                    if (r1.IsSegmentRegister()) { return Op.MovFromSeg; }
                    if (r1.IsCR()) { return Op.MovFromCr; }
                    if (r1.IsDR()) { return Op.MovFromDr; }
                }

                return Op.Mov;
            case Op.Push:
                return IsRegisterOperand(instruction, 0, out var pushed) && pushed.IsSegmentRegister() ? Op.PushSeg : Op.Push;
            case Op.Pop:
                return IsRegisterOperand(instruction, 0, out var popped) && popped.IsSegmentRegister() ? Op.PopSeg : Op.Pop;
            case Op.Imul1:
                return instruction.OpCount switch { 1 => Op.Imul1, 2 => Op.Imul2, _ => Op.Imul3 };
            case Op.Jmp:
            case Op.Call:
                var far = op == Op.Jmp ? (Op.JmpFar, Op.JmpFarIndirect, Op.JmpIndirect) : (Op.CallFar, Op.CallFarIndirect, Op.CallIndirect);
                return instruction.Op0Kind switch
                {
                    OpKind.NearBranch16 or OpKind.NearBranch32 or OpKind.NearBranch64 => op,
                    OpKind.FarBranch16 or OpKind.FarBranch32 => far.Item1,
                    OpKind.Memory when IsFarPointer(instruction.MemorySize) => far.Item2,
                    _ => far.Item3,
                };
            case Op.Movs:
                return instruction.Mnemonic == Mnemonic.Movsd && instruction.Code != Code.Movsd_m32_m32 ? SseForm(instruction) : op;
            case Op.Cmps:
                return instruction.Mnemonic == Mnemonic.Cmpsd && instruction.Code != Code.Cmpsd_m32_m32 ? SseForm(instruction) : op;
            case Op.Sse:
                return SseForm(instruction);
            default:
                return op;
        }
    }

    /// <summary>
    /// The specialised form of a general handler for a 32/64-bit register destination with a register,
    /// immediate or (for MOV/CMP) memory source, or <paramref name="op"/> itself. The shift forms take their
    /// count from the immediate or from CL (the only register a shift count can be).
    /// </summary>
    public static Op Specialize(Op op, in DecodedInstruction d)
    {
        if (d.Instruction.HasLockPrefix || d.Size is not (4 or 8))
        {
            return op;
        }

        var k0 = d.Kind0;
        var k1 = d.Kind1;
        var rr = k0 == OperandKind.Register && k1 == OperandKind.Register;
        var ri = k0 == OperandKind.Register && k1 == OperandKind.Immediate;
        var rm = k0 == OperandKind.Register && k1 == OperandKind.Memory;
        var mr = k0 == OperandKind.Memory && (k1 == OperandKind.Register || k1 == OperandKind.Immediate) && d.MemorySize == d.Size;
        return op switch
        {
            Op.Mov when rr => Op.MovRR,
            Op.Mov when ri => Op.MovRI,
            Op.Mov when rm && d.MemorySize == d.Size => Op.MovRM,
            Op.Mov when k0 == OperandKind.Memory && k1 == OperandKind.Register && d.MemorySize == d.Size => Op.MovMR,
            Op.Add when rr => Op.AddRR,
            Op.Add when ri => Op.AddRI,
            Op.Sub when rr => Op.SubRR,
            Op.Sub when ri => Op.SubRI,
            Op.Cmp when rr => Op.CmpRR,
            Op.Cmp when ri => Op.CmpRI,
            Op.Cmp when rm && d.MemorySize == d.Size => Op.CmpRM,
            Op.And when rr => Op.AndRR,
            Op.And when ri => Op.AndRI,
            Op.Or when rr => Op.OrRR,
            Op.Or when ri => Op.OrRI,
            Op.Xor when rr => Op.XorRR,
            Op.Xor when ri => Op.XorRI,
            Op.Test when rr => Op.TestRR,
            Op.Test when ri => Op.TestRI,
            Op.Shl when ri || rr => Op.ShlRI,
            Op.Shr when ri || rr => Op.ShrRI,
            Op.Sar when ri || rr => Op.SarRI,
            Op.Adc when ri => Op.AdcRI,
            Op.Add when mr => Op.AddMR,
            Op.Or when mr => Op.OrMR,
            Op.And when mr => Op.AndMR,
            Op.Xor when mr => Op.XorMR,
            Op.Sub when mr => Op.SubMR,
            Op.Inc when k0 == OperandKind.Register => Op.IncR,
            Op.Dec when k0 == OperandKind.Register => Op.DecR,
            _ => op,
        };
    }

    /// <summary>True when <paramref name="op"/> may change RIP, the mode, paging, must let the block loop look at the VM (I/O, HLT), or reads the retired-instruction count (RDTSC, RDMSR of the TSC).</summary>
    public static bool EndsBlock(Op op) => op switch
    {
        Op.Jcc or Op.Jmp or Op.JmpIndirect or Op.JmpFar or Op.JmpFarIndirect or Op.Call or Op.CallIndirect or Op.CallFar
            or Op.CallFarIndirect or Op.Ret or Op.RetFar or Op.Loop or Op.Loope or Op.Loopne or Op.Jrcxz or Op.Int or Op.Int3
            or Op.Into or Op.Iret or Op.Ud or Op.Unsupported or Op.Hlt or Op.In or Op.Out or Op.Ins or Op.Outs or Op.MovToCr
            or Op.MovToSeg or Op.PopSeg or Op.Wrmsr or Op.Lgdt or Op.Lidt or Op.Ltr or Op.Lldt or Op.Invlpg or Op.Lmsw
            or Op.Clts or Op.Popf or Op.Sti or Op.Cli or Op.Swapgs or Op.Rdtsc or Op.Rdtscp or Op.Rdmsr or Op.Syscall or Op.Sysret
            or Op.Sysenter or Op.Sysexit or Op.Stac or Op.Clac => true,
        _ => false,
    };

    /// <summary>True when some handler runs <paramref name="mnemonic"/> (for the CPUID-claims test).</summary>
    public static bool IsImplemented(Mnemonic mnemonic) => ByMnemonic[(int)mnemonic] != Op.Unsupported;

    /// <summary>
    /// <see cref="Op.Sse"/> for a legacy SSE/SSE2 form on XMM registers; <see cref="Op.Unsupported"/> for the MMX forms
    /// that share its mnemonic (the interpreter has no MMX state) and for forms of later extensions (SSE4.1 PEXTRW m16 ...).
    /// </summary>
    private static Op SseForm(in Instruction instruction)
    {
        foreach (var feature in instruction.Code.CpuidFeatures())
        {
            if (feature is not (CpuidFeature.SSE or CpuidFeature.SSE2))
            {
                return Op.Unsupported;
            }
        }

        for (var n = 0; n < instruction.OpCount; n++)
        {
            if (instruction.GetOpKind(n) == OpKind.Register && instruction.GetOpRegister(n).IsMM())
            {
                return Op.Unsupported;
            }
        }

        return Op.Sse;
    }

    private static bool IsRegisterOperand(in Instruction instruction, int operand, out Register register)
    {
        if (instruction.OpCount > operand && instruction.GetOpKind(operand) == OpKind.Register)
        {
            register = instruction.GetOpRegister(operand);
            return true;
        }

        register = Register.None;
        return false;
    }

    private static bool IsFarPointer(MemorySize size) => size is MemorySize.SegPtr16 or MemorySize.SegPtr32 or MemorySize.SegPtr64;

    private static Op[] BuildTable()
    {
        var byName = new Dictionary<string, Op>(StringComparer.Ordinal)
        {
            ["Nop"] = Op.Nop, ["Pause"] = Op.Nop, ["Lfence"] = Op.Nop, ["Mfence"] = Op.Nop, ["Sfence"] = Op.Nop,
            ["Wbinvd"] = Op.Nop, ["Invd"] = Op.Nop, ["Prefetchnta"] = Op.Nop,
            ["Clflush"] = Op.CacheLineFlush, ["Clflushopt"] = Op.CacheLineFlush, ["Clwb"] = Op.CacheLineFlush,
            ["Syscall"] = Op.Syscall, ["Sysret"] = Op.Sysret, ["Sysretq"] = Op.Sysret, ["Sysenter"] = Op.Sysenter,
            ["Sysexit"] = Op.Sysexit, ["Sysexitq"] = Op.Sysexit, ["Stac"] = Op.Stac, ["Clac"] = Op.Clac,
            ["Prefetcht0"] = Op.Nop, ["Prefetcht1"] = Op.Nop, ["Prefetcht2"] = Op.Nop, ["Prefetchw"] = Op.Nop,
            ["Endbr32"] = Op.Nop, ["Endbr64"] = Op.Nop,
            ["Mov"] = Op.Mov, ["Movzx"] = Op.Movzx, ["Movsx"] = Op.Movsx, ["Movsxd"] = Op.Movsx, ["Lea"] = Op.Lea,
            ["Xchg"] = Op.Xchg, ["Cmpxchg"] = Op.Cmpxchg, ["Cmpxchg8b"] = Op.Cmpxchg8b, ["Cmpxchg16b"] = Op.Cmpxchg16b,
            ["Xadd"] = Op.Xadd, ["Bswap"] = Op.Bswap,
            ["Add"] = Op.Add, ["Or"] = Op.Or, ["Adc"] = Op.Adc, ["Sbb"] = Op.Sbb, ["And"] = Op.And, ["Sub"] = Op.Sub,
            ["Xor"] = Op.Xor, ["Cmp"] = Op.Cmp, ["Test"] = Op.Test, ["Inc"] = Op.Inc, ["Dec"] = Op.Dec, ["Neg"] = Op.Neg,
            ["Not"] = Op.Not, ["Rol"] = Op.Rol, ["Ror"] = Op.Ror, ["Rcl"] = Op.Rcl, ["Rcr"] = Op.Rcr, ["Shl"] = Op.Shl,
            ["Sal"] = Op.Shl, ["Shr"] = Op.Shr, ["Sar"] = Op.Sar, ["Shld"] = Op.Shld, ["Shrd"] = Op.Shrd,
            ["Mul"] = Op.Mul, ["Imul"] = Op.Imul1, ["Div"] = Op.Div, ["Idiv"] = Op.Idiv,
            ["Bt"] = Op.Bt, ["Bts"] = Op.Bts, ["Btr"] = Op.Btr, ["Btc"] = Op.Btc, ["Bsf"] = Op.Bsf, ["Bsr"] = Op.Bsr,
            ["Popcnt"] = Op.Popcnt, ["Lzcnt"] = Op.Lzcnt, ["Tzcnt"] = Op.Tzcnt,
            ["Cbw"] = Op.SignExtendAccumulator, ["Cwde"] = Op.SignExtendAccumulator, ["Cdqe"] = Op.SignExtendAccumulator,
            ["Cwd"] = Op.SignExtendIntoDx, ["Cdq"] = Op.SignExtendIntoDx, ["Cqo"] = Op.SignExtendIntoDx,
            ["Jmp"] = Op.Jmp, ["Call"] = Op.Call, ["Ret"] = Op.Ret, ["Retf"] = Op.RetFar,
            ["Loop"] = Op.Loop, ["Loope"] = Op.Loope, ["Loopne"] = Op.Loopne,
            ["Jcxz"] = Op.Jrcxz, ["Jecxz"] = Op.Jrcxz, ["Jrcxz"] = Op.Jrcxz,
            ["Push"] = Op.Push, ["Pop"] = Op.Pop,
            ["Pushf"] = Op.Pushf, ["Pushfd"] = Op.Pushf, ["Pushfq"] = Op.Pushf,
            ["Popf"] = Op.Popf, ["Popfd"] = Op.Popf, ["Popfq"] = Op.Popf,
            ["Pushaw"] = Op.Pusha, ["Pushad"] = Op.Pusha, ["Popaw"] = Op.Popa, ["Popad"] = Op.Popa,
            ["Enter"] = Op.Enter, ["Leave"] = Op.Leave,
            ["Clc"] = Op.Clc, ["Stc"] = Op.Stc, ["Cmc"] = Op.Cmc, ["Cld"] = Op.Cld, ["Std"] = Op.Std,
            ["Cli"] = Op.Cli, ["Sti"] = Op.Sti, ["Lahf"] = Op.Lahf, ["Sahf"] = Op.Sahf,
            ["Movsb"] = Op.Movs, ["Movsw"] = Op.Movs, ["Movsd"] = Op.Movs, ["Movsq"] = Op.Movs,
            ["Stosb"] = Op.Stos, ["Stosw"] = Op.Stos, ["Stosd"] = Op.Stos, ["Stosq"] = Op.Stos,
            ["Lodsb"] = Op.Lods, ["Lodsw"] = Op.Lods, ["Lodsd"] = Op.Lods, ["Lodsq"] = Op.Lods,
            ["Cmpsb"] = Op.Cmps, ["Cmpsw"] = Op.Cmps, ["Cmpsd"] = Op.Cmps, ["Cmpsq"] = Op.Cmps,
            ["Scasb"] = Op.Scas, ["Scasw"] = Op.Scas, ["Scasd"] = Op.Scas, ["Scasq"] = Op.Scas,
            ["Insb"] = Op.Ins, ["Insw"] = Op.Ins, ["Insd"] = Op.Ins,
            ["Outsb"] = Op.Outs, ["Outsw"] = Op.Outs, ["Outsd"] = Op.Outs,
            ["In"] = Op.In, ["Out"] = Op.Out, ["Hlt"] = Op.Hlt, ["Int"] = Op.Int, ["Int3"] = Op.Int3, ["Into"] = Op.Into,
            ["Iret"] = Op.Iret, ["Iretd"] = Op.Iret, ["Iretq"] = Op.Iret,
            ["Ud0"] = Op.Ud, ["Ud1"] = Op.Ud, ["Ud2"] = Op.Ud,
            ["Cpuid"] = Op.Cpuid, ["Rdtsc"] = Op.Rdtsc, ["Rdtscp"] = Op.Rdtscp, ["Rdmsr"] = Op.Rdmsr, ["Wrmsr"] = Op.Wrmsr,
            ["Lgdt"] = Op.Lgdt, ["Lidt"] = Op.Lidt, ["Sgdt"] = Op.Sgdt, ["Sidt"] = Op.Sidt, ["Ltr"] = Op.Ltr,
            ["Lldt"] = Op.Lldt, ["Str"] = Op.Str, ["Sldt"] = Op.Sldt, ["Invlpg"] = Op.Invlpg, ["Clts"] = Op.Clts,
            ["Lmsw"] = Op.Lmsw, ["Smsw"] = Op.Smsw, ["Swapgs"] = Op.Swapgs, ["Xlatb"] = Op.Xlat, ["Rdpid"] = Op.Rdpid,
            ["Lar"] = Op.Lar, ["Lsl"] = Op.Lsl, ["Verr"] = Op.Verify, ["Verw"] = Op.Verify, ["Movnti"] = Op.Mov,
            ["Ldmxcsr"] = Op.SseState, ["Stmxcsr"] = Op.SseState, ["Fxsave"] = Op.SseState, ["Fxsave64"] = Op.SseState,
            ["Fxrstor"] = Op.SseState, ["Fxrstor64"] = Op.SseState, ["Xsave"] = Op.SseState, ["Xsave64"] = Op.SseState,
            ["Xrstor"] = Op.SseState, ["Xrstor64"] = Op.SseState, ["Xgetbv"] = Op.SseState, ["Xsetbv"] = Op.SseState,
            ["Fninit"] = Op.X87Control, ["Finit"] = Op.X87Control, ["Fnclex"] = Op.X87Control, ["Fclex"] = Op.X87Control,
            ["Wait"] = Op.X87Control, ["Fnstsw"] = Op.X87Control, ["Fstsw"] = Op.X87Control, ["Fnstcw"] = Op.X87Control,
            ["Fstcw"] = Op.X87Control, ["Fldcw"] = Op.X87Control, ["Fnstenv"] = Op.X87Control, ["Fstenv"] = Op.X87Control,
            ["Fldenv"] = Op.X87Control,
        };
        foreach (var name in SseMnemonics)
        {
            byName[name] = Op.Sse;
        }

        foreach (var suffix in ConditionSuffixes)
        {
            byName["J" + suffix] = Op.Jcc;
            byName["Set" + suffix] = Op.Setcc;
            byName["Cmov" + suffix] = Op.Cmovcc;
        }

        var table = new Op[Enum.GetValues<Mnemonic>().Max(m => (int)m) + 1];
        foreach (var mnemonic in Enum.GetValues<Mnemonic>())
        {
            table[(int)mnemonic] = byName.GetValueOrDefault(mnemonic.ToString(), Op.Unsupported);
        }

        return table;
    }
}
