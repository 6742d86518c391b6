using System.Runtime.Intrinsics;
using Hypervisor.Vmm.Cpu;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Vmm.Tests.Cpu;

/// <summary>
/// The translating tier against the interpreter: seeded random loops of the forms the translator covers (and some it
/// leaves to the interpreter, in between) run under <see cref="ExecutionTier.Interp"/> and under
/// <see cref="ExecutionTier.Jit"/> compiling on first use; registers, RFLAGS, RIP, the retired count and the data page
/// must be equal — at HLT, and where an instruction budget cuts the run in the middle of a pass.
/// </summary>
public sealed class JitDifferentialTests
{
    private const ulong Data = CpuTestMachine.DataAddress;

    private static readonly AssemblerRegister64[] Destinations64 = [rax, rbx, rcx, rdx, rsi, rdi, rbp, r8, r9, r10, r11, r12];
    private static readonly AssemblerRegister32[] Destinations32 = [eax, ebx, ecx, edx, esi, edi, ebp, r8d, r9d, r10d, r11d, r12d];
    private static readonly Register[] Compared =
    [
        Register.RAX, Register.RBX, Register.RCX, Register.RDX, Register.RSI, Register.RDI, Register.RBP, Register.RSP,
        Register.R8, Register.R9, Register.R10, Register.R11, Register.R12, Register.R13, Register.R14, Register.R15,
    ];

    [Test]
    public void RandomLoopsEndInTheSameStateUnderBothTiers([Range(1, 200)] int seed)
    {
        var random = new Random(seed);
        RunUnderBothTiers(seed, random, RandomProgram(random));
    }

    [Test]
    public void RandomTwoBlockLoopsEndInTheSameStateUnderBothTiers([Range(1, 60)] int seed)
    {
        var random = new Random(seed);
        var compiled = RunUnderBothTiers(seed, random, RandomTwoBlockProgram(random), threshold: 3);
        Assert.That(compiled.LoopTraces, Is.GreaterThan(0), $"seed {seed}: the loop's two blocks were compiled as one trace");
    }

    // Runs the program under both tiers with the same seeded registers, data page and XMM file, a random budget first
    // (cutting a pass), then to HLT, comparing full state at both points; returns the compiled run's JIT counters. A
    // threshold above 1 lets the blocks link before they are compiled (a loop trace is formed from the links).
    private static JitStats RunUnderBothTiers(int seed, Random random, Action<Assembler> program, int threshold = 1)
    {
        var registers = Compared.Where(r => r is not (Register.RSP or Register.R13 or Register.R15))
            .Select(r => (r, (ulong)random.NextInt64() ^ ((ulong)random.Next() << 40))).ToArray();
        var data = new byte[4096];
        random.NextBytes(data);
        var budget = random.Next(20, 300);

        var xmm = Enumerable.Range(0, 16).Select(_ => Vector128.Create((ulong)random.NextInt64(), (ulong)random.NextInt64()).AsByte()).ToArray();
        using var interpreted = Start(ExecutionTier.Interp, program, registers, data, xmm, threshold);
        using var compiled = Start(ExecutionTier.Jit, program, registers, data, xmm, threshold);
        var first = (interpreted.Run(budget), compiled.Run(budget));
        AssertSameState(interpreted, compiled, $"seed {seed}, after a budget of {budget}");
        Assert.That(first.Item2.Reason, Is.EqualTo(first.Item1.Reason), $"seed {seed}: exit after the budget");

        var listing = Disassemble(interpreted);
        if (first.Item1.Reason == CpuExitReason.Halted)
        {
            Assert.That(budget, Is.GreaterThanOrEqualTo(interpreted.Cpu.Stats.Instructions), "halted within the budget");
        }
        else
        {
            Assert.That(interpreted.Run().Reason, Is.EqualTo(CpuExitReason.Halted), () => $"seed {seed}: the interpreter's run\n{interpreted.Cpu.DescribeState()}\n{listing}");
            Assert.That(compiled.Run().Reason, Is.EqualTo(CpuExitReason.Halted), () => $"seed {seed}: the JIT's run\n{compiled.Cpu.DescribeState()}\n{listing}");
        }

        AssertSameState(interpreted, compiled, $"seed {seed}, at HLT");
        Assert.That(compiled.Cpu.Stats.Instructions, Is.GreaterThan(100), "the loop ran long enough to be worth comparing");
        Assert.That(compiled.Cpu.JitStats.BlocksCompiled, Is.GreaterThan(0), "the JIT run compiled the loop");
        Assert.That(compiled.Cpu.JitStats.Instructions, Is.GreaterThan(compiled.Cpu.Stats.Instructions / 2), "most instructions retired in compiled code");
        return compiled.Cpu.JitStats;
    }

    [Test]
    public void AFaultInTheMiddleOfACompiledLoopIsDeliveredAtTheSameInstructionAsTheInterpreterDeliversIt()
    {
        // The loop's pointer steps by 1 GiB: the first pass loads from the data page, the second from above the
        // 1 GiB the page tables map, so the load faults in a later pass of the compiled block; the #PF handler halts.
        var handler = default(Label);
        void Program(Assembler a)
        {
            var loop = a.CreateLabel();
            handler = a.CreateLabel();
            a.Label(ref loop);
            a.add(rax, rbx);
            a.mov(rdx, __qword_ptr[rsi]);
            a.xor(rax, rdx);
            a.add(rsi, 0x4000_0000);
            a.cmp(rax, rcx);
            a.jne(loop);
            a.hlt();
            a.Label(ref handler);
            a.hlt();
        }

        using var interpreted = CpuTestMachine.With(64, Program);
        var interpretedHandler = interpreted.AddressOf(handler);
        using var compiled = CpuTestMachine.With(64, Program);
        var compiledHandler = compiled.AddressOf(handler);
        foreach (var machine in new[] { interpreted, compiled })
        {
            machine.Cpu.Tier = ReferenceEquals(machine, interpreted) ? ExecutionTier.Interp : ExecutionTier.Jit;
            machine.Cpu.JitThreshold = 1;
            machine.SetGate(14, ReferenceEquals(machine, interpreted) ? interpretedHandler : compiledHandler);
            machine[Register.RBX] = 3;
            machine[Register.RCX] = 1;
            machine[Register.RSI] = Data;
            machine.RunToHalt();
        }

        AssertSameState(interpreted, compiled, "at the #PF handler's HLT");
        Assert.That(compiled.Cpu.Rip, Is.EqualTo(compiledHandler + 1), "the #PF handler ran");
        Assert.That(compiled.ReadUInt64(compiled[Register.RSP] + 8), Is.EqualTo(CpuTestMachine.CodeAddress + 3),
            "the fault's return address is the load (after the 3-byte ADD)");
        Assert.That(compiled.Cpu.JitStats.Instructions, Is.GreaterThan(0));
    }

    [Test]
    public void AFaultPartWayThroughACompiledRepStringLeavesTheInterpretersState([Values] bool down, [Values(1, 8)] int size, [Values] bool store)
    {
        // Each pass of the loop copies (or fills) 64 bytes with REP MOVS/STOS, its destination 0x100 bytes further
        // each pass (lower with DF=1). The first passes stay inside one page (the compiled in-page path); the last one
        // runs after 32 bytes into a 2 MiB page that is not present (PDE 2), so the instruction faults part-way with
        // RCX/RSI/RDI at the faulting element, and the #PF handler halts. Going down, the passes run in PDE 3, which
        // maps the data page's 2 MiB frame, and fall into PDE 2 below it.
        const ulong present2M = 0x83;
        var handler = default(Label);
        var repeated = default(Label);
        void Program(Assembler a)
        {
            var loop = a.CreateLabel();
            handler = a.CreateLabel();
            repeated = a.CreateLabel();
            a.mov(r13, 4);
            if (down)
            {
                a.std();
            }

            a.Label(ref loop);
            a.mov(rcx, 64 / size);
            a.mov(rsi, r9);
            a.mov(rdi, r10);
            a.Label(ref repeated);
            switch (store, size)
            {
                case (true, 1): a.rep.stosb(); break;
                case (true, _): a.rep.stosq(); break;
                case (false, 1): a.rep.movsb(); break;
                default: a.rep.movsq(); break;
            }

            a.add(r10, r11);
            a.dec(r13);
            a.jnz(loop);
            a.hlt();
            a.Label(ref handler);
            a.hlt();
        }

        var machines = new List<CpuTestMachine>();
        try
        {
            foreach (var tier in new[] { ExecutionTier.Interp, ExecutionTier.Jit })
            {
                var m = CpuTestMachine.With(64, Program);
                machines.Add(m);
                m.Cpu.Tier = tier;
                m.Cpu.JitThreshold = 1;
                m.SetGate(14, m.AddressOf(handler));
                m.WriteUInt64(Hypervisor.Vmm.Boot.LongModeBoot.PdAddress + (2 * 8), 0);
                m.WriteUInt64(Hypervisor.Vmm.Boot.LongModeBoot.PdAddress + (3 * 8), 0x20_0000 | present2M);
                m[Register.RAX] = 0x1122_3344_5566_7788;
                m[Register.R9] = Data + 0x800;
                m[Register.R10] = down ? 0x60_0000 + 0x20 - (ulong)size + 0x300 : 0x40_0000 - 0x20 - 0x300;
                m[Register.R11] = down ? unchecked((ulong)-0x100) : 0x100;
                m.WriteBytes(Data + 0x700, Enumerable.Range(0, 0x200).Select(k => (byte)(k * 7)).ToArray());
                m.RunToHalt();
                Assert.That(m.Cpu.Rip, Is.EqualTo(m.AddressOf(handler) + 1), $"{tier}: the #PF handler ran");
                Assert.That(m.ReadUInt64(m[Register.RSP] + 8), Is.EqualTo(m.AddressOf(repeated)), $"{tier}: the fault's return address is the REP instruction");
                Assert.That(m[Register.RCX], Is.EqualTo(32UL / (ulong)size), $"{tier}: the elements left when the fault came");
            }

            AssertSameState(machines[0], machines[1], "at the #PF handler's HLT");
            Assert.That(machines[1].Cpu.JitStats.Instructions, Is.GreaterThan(0), "the loop ran compiled");
        }
        finally
        {
            machines.ForEach(m => m.Dispose());
        }
    }

    [Test]
    public void AMemoryAddIntoDecodedCodeEndsTheBlockWithItsOwnFlagsUnderBothTiers()
    {
        // The ADD to memory writes into the code page (after the HLT, never run), which holds decoded code: the write
        // takes the interpreter's path and ends the block there. The flags after it are the ADD's (CF set: 0xFFFFFFFF +
        // 1 wraps), not the CMP's before it (CF clear), under both tiers.
        var scratch = default(Label);
        void Program(Assembler a)
        {
            var loop = a.CreateLabel();
            scratch = a.CreateLabel();
            a.mov(r13, 3);
            a.Label(ref loop);
            a.mov(__dword_ptr[rsi], 0xFFFF_FFFF);
            a.cmp(rax, rbx);
            a.add(__dword_ptr[rsi], ecx);
            a.setb(dl);
            a.add(r8, rdx);
            a.dec(r13);
            a.jnz(loop);
            a.hlt();
            a.Label(ref scratch);
            a.dd(0);
        }

        var finals = new List<CpuTestMachine>();
        try
        {
            foreach (var tier in new[] { ExecutionTier.Interp, ExecutionTier.Jit })
            {
                var m = CpuTestMachine.With(64, Program);
                finals.Add(m);
                m.Cpu.Tier = tier;
                m.Cpu.JitThreshold = 1;
                m[Register.RSI] = m.AddressOf(scratch);
                m[Register.RAX] = 5;
                m[Register.RBX] = 1;
                m[Register.RCX] = 1;
                m.RunToHalt();
                Assert.That(m[Register.R8], Is.EqualTo(3), $"{tier}: SETB saw the ADD's carry in every pass");
            }

            AssertSameState(finals[0], finals[1], "at HLT");
        }
        finally
        {
            finals.ForEach(m => m.Dispose());
        }
    }

    private static string Disassemble(CpuTestMachine machine)
    {
        var bytes = machine.ReadBytes(CpuTestMachine.CodeAddress, 512);
        var decoder = Decoder.Create(64, bytes, CpuTestMachine.CodeAddress);
        var formatter = new NasmFormatter();
        var output = new StringOutput();
        var lines = new List<string>();
        while (decoder.IP < CpuTestMachine.CodeAddress + (ulong)bytes.Length)
        {
            var instruction = decoder.Decode();
            formatter.Format(instruction, output);
            lines.Add($"{instruction.IP:x}: {output.ToStringAndReset()}");
            if (instruction.Code == Code.Hlt)
            {
                break;
            }
        }

        return string.Join(Environment.NewLine, lines);
    }

    private static CpuTestMachine Start(ExecutionTier tier, Action<Assembler> program, (Register, ulong)[] registers, byte[] data, Vector128<byte>[] xmm, int threshold)
    {
        var machine = new CpuTestMachine(64, X86Cpu.Cr4Osfxsr | X86Cpu.Cr4Osxmmexcpt);
        var assembler = new Assembler(64);
        program(assembler);
        machine.Load(assembler);
        for (var k = 0; k < xmm.Length; k++)
        {
            machine.Cpu.SetXmm(k, xmm[k]);
        }

        machine.Cpu.Tier = tier;
        machine.Cpu.JitThreshold = threshold;
        foreach (var (register, value) in registers)
        {
            machine[register] = value;
        }

        machine[Register.R15] = Data;
        machine.WriteBytes(Data, data);
        return machine;
    }

    private static void AssertSameState(CpuTestMachine expected, CpuTestMachine actual, string when)
    {
        Assert.Multiple(() =>
        {
            foreach (var register in Compared)
            {
                Assert.That(actual[register], Is.EqualTo(expected[register]), $"{register} {when}");
            }

            Assert.That(actual.Rflags & ~X86Cpu.FlagAf, Is.EqualTo(expected.Rflags & ~X86Cpu.FlagAf), $"RFLAGS {when}");
            Assert.That(actual.Rflags, Is.EqualTo(expected.Rflags), $"RFLAGS with AF {when}");
            Assert.That(actual.Cpu.Rip, Is.EqualTo(expected.Cpu.Rip), $"RIP {when}");
            Assert.That(actual.Cpu.Stats.Instructions, Is.EqualTo(expected.Cpu.Stats.Instructions), $"retired instructions {when}");
            Assert.That(actual.ReadBytes(Data, 4096), Is.EqualTo(expected.ReadBytes(Data, 4096)), $"the data page {when}");
            for (var k = 0; k < 16; k++)
            {
                Assert.That(actual.Cpu.GetXmm(k), Is.EqualTo(expected.Cpu.GetXmm(k)), $"XMM{k} {when}");
            }

            Assert.That(actual.Cpu.Mxcsr, Is.EqualTo(expected.Cpu.Mxcsr), $"MXCSR {when}");
        });
    }

    // mov r13, passes; loop: <body>; dec r13; jnz loop; hlt. R15 points at the data page, R13 counts passes; neither is
    // a destination. The body mixes translated forms with ones left to the interpreter and short forward branches.
    private static Action<Assembler> RandomProgram(Random random)
    {
        var length = random.Next(4, 24);
        var passes = random.Next(20, 80);
        var steps = Enumerable.Range(0, length).Select(_ => random.Next()).ToArray();
        return a =>
        {
            a.mov(r13, passes);
            var loop = a.CreateLabel();
            a.Label(ref loop);
            foreach (var step in steps)
            {
                EmitRandom(a, new Random(step));
            }

            a.dec(r13);
            a.jnz(loop);
            a.hlt();
        };
    }

    // mov r13, passes; loop: <A>; test r13, mask; jnz second; <C>; second: <B>; dec r13; jnz loop; hlt. A loop body split
    // by a conditional branch (two blocks, compiled as one trace: A with B, or A with C+B), the bodies drawn from the
    // same forms without forward branches of their own.
    private static Action<Assembler> RandomTwoBlockProgram(Random random)
    {
        var passes = random.Next(20, 80);
        var mask = random.Next(1, 4);
        int[] Steps(int min, int max) => Enumerable.Range(0, random.Next(min, max)).Select(_ => random.Next()).ToArray();
        var (first, skipped, second) = (Steps(2, 12), Steps(0, 4), Steps(2, 12));
        return a =>
        {
            a.mov(r13, passes);
            var loop = a.CreateLabel();
            var join = a.CreateLabel();
            a.Label(ref loop);
            Array.ForEach(first, step => EmitRandom(a, new Random(step), branches: false));
            a.test(r13, mask);
            a.jnz(join);
            Array.ForEach(skipped, step => EmitRandom(a, new Random(step), branches: false));
            a.Label(ref join);
            Array.ForEach(second, step => EmitRandom(a, new Random(step), branches: false));
            a.dec(r13);
            a.jnz(loop);
            a.hlt();
        };
    }

    private static void EmitRandom(Assembler a, Random random, bool branches = true)
    {
        var d64 = Destinations64[random.Next(Destinations64.Length)];
        var s64 = Destinations64[random.Next(Destinations64.Length)];
        var d32 = Destinations32[random.Next(Destinations32.Length)];
        var s32 = Destinations32[random.Next(Destinations32.Length)];
        var imm = random.Next(3) == 0 ? random.Next(-4, 4) : random.Next();
        var disp = random.Next(0, 4096 / 8 - 1) * 8;
        var wide = random.Next(2) == 0;
        var form = random.Next(39);
        switch (form == 20 && !branches ? 0 : form)
        {
            case 36:
                switch (random.Next(4))
                {
                    case 0: if (wide) { a.adc(d64, s64); } else { a.sbb(d32, s32); } break;
                    case 1: if (wide) { a.sbb(d64, __qword_ptr[r15 + disp]); } else { a.adc(d32, __dword_ptr[r15 + disp]); } break;
                    case 2: if (wide) { a.sbb(d64, imm); } else { a.sbb(d32, imm); } break;
                    default: a.AddInstruction(Instruction.Create(Code.Stc)); a.adc(d64, s64); break;
                }

                break;
            case 37:
                switch (random.Next(5))
                {
                    case 0: if (wide) { a.add(d64, __qword_ptr[r15 + disp]); } else { a.add(d32, __dword_ptr[r15 + disp]); } break;
                    case 1: if (wide) { a.sub(d64, __qword_ptr[r15 + disp]); } else { a.sub(d32, __dword_ptr[r15 + disp]); } break;
                    case 2: if (wide) { a.and(d64, __qword_ptr[r15 + disp]); } else { a.and(d32, __dword_ptr[r15 + disp]); } break;
                    case 3: if (wide) { a.or(d64, __qword_ptr[r15 + disp]); } else { a.or(d32, __dword_ptr[r15 + disp]); } break;
                    default: if (wide) { a.xor(d64, __qword_ptr[r15 + disp]); } else { a.xor(d32, __dword_ptr[r15 + disp]); } break;
                }

                break;
            case 38:
                // PUSH/POP of 64-bit registers (RSP itself now and then); the stack drifts by at most a few KiB.
                switch (random.Next(4))
                {
                    case 0: a.push(s64); a.pop(d64); break;
                    case 1: a.push(s64); break;
                    case 2: a.pop(d64); break;
                    default: if (wide) { a.push(rsp); } else { a.pop(rsp); a.mov(rsp, (ulong)CpuTestMachine.StackTop - 0x800); } break;
                }

                break;
            case 33: case 34:
                EmitRandomNarrowCompare(a, random, disp);
                if (random.Next(2) == 0)
                {
                    a.AddInstruction(Instruction.Create(Code.Seto_rm8 + random.Next(16), Register.DL));
                }

                break;
            case 35:
                if (wide) { a.cmp(__qword_ptr[r15 + disp], s64); } else { a.test(__dword_ptr[r15 + disp], s32); }
                break;
            case 29: case 30:
                EmitRandomWidening(a, random, d64, d32, disp);
                break;
            case 31:
            {
                var code = random.Next(16);
                a.AddInstruction(Instruction.Create(Code.Seto_rm8 + code, random.Next(2) == 0 ? Register.BH : Register.DL));
                break;
            }

            case 32:
                a.AddInstruction(Instruction.Create((wide ? Code.Cmovo_r64_rm64 : Code.Cmovo_r32_rm32) + (3 * random.Next(16)),
                    wide ? (Register)d64 : (Register)d32, wide ? (Register)s64 : (Register)s32));
                break;
            case 24: case 25: case 26:
                EmitRandomSse(a, random);
                break;
            case 27: case 28:
                EmitRandomString(a, random);
                break;
            case 0: if (wide) { a.mov(d64, s64); } else { a.mov(d32, s32); } break;
            case 1: if (wide) { a.mov(d64, (ulong)random.NextInt64()); } else { a.mov(d32, (uint)imm); } break;
            case 2: if (wide) { a.add(d64, s64); } else { a.add(d32, imm); } break;
            case 3: if (wide) { a.sub(d64, imm); } else { a.sub(d32, s32); } break;
            case 4: if (wide) { a.cmp(d64, s64); } else { a.cmp(d32, imm); } break;
            case 5: if (wide) { a.and(d64, imm); } else { a.and(d32, s32); } break;
            case 6: if (wide) { a.or(d64, s64); } else { a.or(d32, imm); } break;
            case 7: if (wide) { a.xor(d64, imm); } else { a.xor(d32, s32); } break;
            case 8: if (wide) { a.test(d64, s64); } else { a.test(d32, imm); } break;
            case 9:
            {
                var count = (byte)random.Next(0, 64);
                switch (random.Next(3))
                {
                    case 0: if (wide) { a.shl(d64, count); } else { a.shl(d32, count); } break;
                    case 1: if (wide) { a.shr(d64, count); } else { a.shr(d32, count); } break;
                    default: if (wide) { a.sar(d64, count); } else { a.sar(d32, count); } break;
                }

                break;
            }

            case 10:
                switch (random.Next(3))
                {
                    case 0: if (wide) { a.shl(d64, cl); } else { a.shl(d32, cl); } break;
                    case 1: if (wide) { a.shr(d64, cl); } else { a.shr(d32, cl); } break;
                    default: if (wide) { a.sar(d64, cl); } else { a.sar(d32, cl); } break;
                }

                break;
            case 11: if (wide) { a.adc(d64, imm); } else { a.adc(d32, imm); } break;
            case 12: if (wide) { a.inc(d64); } else { a.dec(d32); } break;
            case 13: if (wide) { a.lea(d64, __[s64 + r14 * 4 + imm]); } else { a.lea(d32, __[s64 + disp]); } break;
            case 14: if (wide) { a.mov(d64, __qword_ptr[r15 + disp]); } else { a.mov(d32, __dword_ptr[r15 + disp]); } break;
            case 15: if (wide) { a.mov(__qword_ptr[r15 + disp], s64); } else { a.mov(__dword_ptr[r15 + disp], s32); } break;
            case 16: if (wide) { a.cmp(d64, __qword_ptr[r15 + disp]); } else { a.cmp(d32, __dword_ptr[r15 + disp]); } break;
            case 17:
                switch (random.Next(5))
                {
                    case 0: if (wide) { a.add(__qword_ptr[r15 + disp], s64); } else { a.add(__dword_ptr[r15 + disp], imm); } break;
                    case 1: if (wide) { a.sub(__qword_ptr[r15 + disp], imm); } else { a.sub(__dword_ptr[r15 + disp], s32); } break;
                    case 2: if (wide) { a.or(__qword_ptr[r15 + disp], s64); } else { a.or(__dword_ptr[r15 + disp], s32); } break;
                    case 3: if (wide) { a.and(__qword_ptr[r15 + disp], imm); } else { a.and(__dword_ptr[r15 + disp], imm); } break;
                    default: if (wide) { a.xor(__qword_ptr[r15 + disp], s64); } else { a.xor(__dword_ptr[r15 + disp], s32); } break;
                }

                break;
            case 18:
            {
                // A condition read through the interpreter (SETcc) right after a translated flag setter.
                var code = random.Next(16);
                a.AddInstruction(Instruction.Create(Code.Seto_rm8 + code, Register.AL));
                break;
            }

            case 19: if (wide) { a.neg(d64); } else { a.not(d32); } break;
            case 20:
            {
                // A short forward branch: the block ends here and the next one starts at either target.
                var skip = a.CreateLabel();
                BranchOn(a, random.Next(16), skip);
                a.add(d64, s64);
                a.Label(ref skip);
                a.nop();
                break;
            }

            case 21: a.mov(r14, (ulong)random.Next(0, 64)); break;
            case 22:
                switch (random.Next(3))
                {
                    case 0: if (wide) { a.imul(d64, s64); } else { a.cmovb(d32, s32); } break;
                    case 1: if (wide) { a.imul(d64, s64, imm); } else { a.imul(d32, s32); } break;
                    default: if (wide) { a.imul(d64, __qword_ptr[r15 + disp]); } else { a.imul(d32, s32, imm); } break;
                }

                break;
            default: if (wide) { a.sub(d64, s64); } else { a.cmp(d32, s32); } break;
        }
    }

    private static readonly AssemblerRegisterXMM[] Xmm = [xmm0, xmm1, xmm2, xmm3, xmm4, xmm5, xmm6, xmm7, xmm8, xmm15];

    // An SSE form the translator covers (or its interpreter fallback: an operand that crosses into the next page),
    // with a register or an in-page memory operand in the data page (16-byte aligned for the aligned forms).
    private static void EmitRandomSse(Assembler a, Random random)
    {
        var x = Xmm[random.Next(Xmm.Length)];
        var y = Xmm[random.Next(Xmm.Length)];
        var r64 = Destinations64[random.Next(Destinations64.Length)];
        var r32 = Destinations32[random.Next(Destinations32.Length)];
        var aligned = __xmmword_ptr[r15 + (random.Next(0, 4096 / 16) * 16)];
        var unaligned = __xmmword_ptr[r15 + random.Next(0, 4096 - 16)];
        var q = __qword_ptr[r15 + random.Next(0, 4096 - 8)];
        var dw = __dword_ptr[r15 + random.Next(0, 4096 - 4)];
        var memory = random.Next(3) == 0;
        switch (random.Next(16))
        {
            case 0:
                switch (random.Next(3))
                {
                    case 0: a.movdqa(x, y); break;
                    case 1: a.movdqa(x, aligned); break;
                    default: a.movdqa(aligned, x); break;
                }

                break;
            case 1:
                switch (random.Next(3))
                {
                    case 0: a.movdqu(x, unaligned); break;
                    case 1: a.movdqu(unaligned, x); break;
                    default: a.movups(unaligned, x); break;
                }

                break;
            case 2:
                switch (random.Next(3))
                {
                    case 0: if (memory) { a.movaps(x, aligned); } else { a.movaps(x, y); } break;
                    case 1: a.movups(x, unaligned); break;
                    default: a.movaps(aligned, x); break;
                }

                break;
            case 3:
                switch (random.Next(4))
                {
                    case 0: a.movq(x, r64); break;
                    case 1: a.movd(x, r32); break;
                    case 2: a.movq(r64, x); break;
                    default: a.movd(r32, x); break;
                }

                break;
            case 4:
                switch (random.Next(5))
                {
                    case 0: a.movq(x, q); break;
                    case 1: a.movq(q, x); break;
                    case 2: a.movd(x, dw); break;
                    case 3: a.movd(dw, x); break;
                    default: a.movq(x, y); break;
                }

                break;
            case 5:
                switch (random.Next(6))
                {
                    case 0: a.movss(x, y); break;
                    case 1: a.movsd(x, y); break;
                    case 2: a.movss(x, dw); break;
                    case 3: a.movsd(x, q); break;
                    case 4: a.movss(dw, x); break;
                    default: a.movsd(q, x); break;
                }

                break;
            case 6: if (memory) { a.pxor(x, aligned); } else { a.pxor(x, y); } break;
            case 7: if (memory) { a.pand(x, aligned); } else if (random.Next(2) == 0) { a.pandn(x, y); } else { a.por(x, y); } break;
            case 8:
                switch (random.Next(4))
                {
                    case 0: if (memory) { a.paddb(x, aligned); } else { a.paddb(x, y); } break;
                    case 1: a.paddw(x, y); break;
                    case 2: a.paddd(x, y); break;
                    default: a.paddq(x, y); break;
                }

                break;
            case 9:
                switch (random.Next(4))
                {
                    case 0: a.psubb(x, y); break;
                    case 1: if (memory) { a.psubw(x, aligned); } else { a.psubw(x, y); } break;
                    case 2: a.psubd(x, y); break;
                    default: a.psubq(x, y); break;
                }

                break;
            case 10:
                switch (random.Next(3))
                {
                    case 0: if (memory) { a.pcmpeqb(x, aligned); } else { a.pcmpeqb(x, y); } break;
                    case 1: a.pcmpeqw(x, y); break;
                    default: a.pcmpeqd(x, y); break;
                }

                break;
            case 11:
                switch (random.Next(3))
                {
                    case 0: a.pcmpgtb(x, y); break;
                    case 1: a.pcmpgtw(x, y); break;
                    default: a.pcmpgtd(x, y); break;
                }

                break;
            case 12: if (random.Next(2) == 0) { a.pminub(x, y); } else { a.pmaxsw(x, y); } break;
            case 13: a.pmovmskb(r32, x); break;
            case 14: if (memory) { a.xorps(x, aligned); } else { a.andnps(x, y); } break;
            default:
                // Crosses from the data page into the next: the interpreter's arm.
                a.movdqu(x, __xmmword_ptr[r15 + (4096 - 8)]);
                break;
        }
    }

    // MOVS/STOS/LODS, repeated or not, with a small count (0 included) in either direction, operands in the data page
    // (overlapping ones too); now and then a copy that leaves the page, which the interpreter's arm does.
    private static void EmitRandomString(Assembler a, Random random)
    {
        var size = 1 << random.Next(4);
        var count = random.Next(5) == 0 ? 0 : random.Next(1, 24);
        var leaves = random.Next(8) == 0;
        var span = 24 * 8;
        a.mov(ecx, leaves ? 400 : count);
        a.lea(rsi, __[r15 + random.Next(span, 4096 - span)]);
        a.lea(rdi, leaves ? __[r15 + 4096 - 64] : __[r15 + random.Next(span, 4096 - span)]);
        var down = !leaves && random.Next(2) == 0;
        if (down)
        {
            a.std();
        }

        var repeated = leaves || random.Next(4) != 0;
        var prefix = repeated ? a.rep : a;
        switch (random.Next(leaves ? 2 : 3), size)
        {
            case (0, 1): prefix.movsb(); break;
            case (0, 2): prefix.movsw(); break;
            case (0, 4): prefix.movsd(); break;
            case (0, _): prefix.movsq(); break;
            case (1, 1): prefix.stosb(); break;
            case (1, 2): prefix.stosw(); break;
            case (1, 4): prefix.stosd(); break;
            case (1, _): prefix.stosq(); break;
            case (_, 1): prefix.lodsb(); break;
            case (_, 2): prefix.lodsw(); break;
            case (_, 4): prefix.lodsd(); break;
            default: prefix.lodsq(); break;
        }

        if (down)
        {
            a.cld();
        }
    }

    // MOVZX/MOVSX from a byte (AH..BH included) or word register or memory, MOVSXD from a dword, into a 32/64-bit
    // destination.
    private static void EmitRandomWidening(Assembler a, Random random, AssemblerRegister64 d64, AssemblerRegister32 d32, int disp)
    {
        var wide = random.Next(2) == 0;
        var signed = random.Next(2) == 0;
        switch (random.Next(5))
        {
            case 0:
                // A high-byte source takes no REX prefix: a legacy 32-bit destination.
                if (random.Next(2) == 0) { if (signed) { a.movsx(esi, ch); } else { a.movzx(edx, bh); } }
                else if (signed) { if (wide) { a.movsx(d64, sil); } else { a.movsx(d32, sil); } }
                else if (wide) { a.movzx(d64, sil); } else { a.movzx(d32, sil); }
                break;

            case 1:
                if (signed) { if (wide) { a.movsx(d64, bx); } else { a.movsx(d32, r9w); } }
                else if (wide) { a.movzx(d64, r10w); } else { a.movzx(d32, dx); }
                break;
            case 2:
                if (signed) { if (wide) { a.movsx(d64, __byte_ptr[r15 + disp + 3]); } else { a.movsx(d32, __word_ptr[r15 + disp + 1]); } }
                else if (wide) { a.movzx(d64, __word_ptr[r15 + disp + 6]); } else { a.movzx(d32, __byte_ptr[r15 + disp + 5]); }
                break;
            case 3: a.movsxd(d64, random.Next(2) == 0 ? ebp : r11d); break;
            default: a.movsxd(d64, __dword_ptr[r15 + disp + 4]); break;
        }
    }

    // CMP/TEST of bytes and words: register, memory (either side) or immediate operands, high-byte registers too.
    private static void EmitRandomNarrowCompare(Assembler a, Random random, int disp)
    {
        var imm = random.Next(3) == 0 ? random.Next(-3, 3) : random.Next(-128, 128);
        switch (random.Next(10))
        {
            case 0: a.cmp(al, dl); break;
            case 1: a.cmp(bh, cl); break;
            case 2: a.cmp(__byte_ptr[r15 + disp + 1], sil); break;
            case 3: a.cmp(r9b, __byte_ptr[r15 + disp + 2]); break;
            case 4: a.cmp(__byte_ptr[r15 + disp], imm); break;
            case 5: a.test(bl, r10b); break;
            case 6: a.test(__byte_ptr[r15 + disp + 3], (byte)imm); break;
            case 7: a.cmp(dx, r8w); break;
            case 8: a.cmp(__word_ptr[r15 + disp + 2], imm); break;
            default: a.test(__word_ptr[r15 + disp + 4], si); break;
        }
    }

    private static void BranchOn(Assembler a, int code, Label target)
    {
        switch (code)
        {
            case 0: a.jo(target); break;
            case 1: a.jno(target); break;
            case 2: a.jb(target); break;
            case 3: a.jae(target); break;
            case 4: a.je(target); break;
            case 5: a.jne(target); break;
            case 6: a.jbe(target); break;
            case 7: a.ja(target); break;
            case 8: a.js(target); break;
            case 9: a.jns(target); break;
            case 10: a.jp(target); break;
            case 11: a.jnp(target); break;
            case 12: a.jl(target); break;
            case 13: a.jge(target); break;
            case 14: a.jle(target); break;
            default: a.jg(target); break;
        }
    }
}
