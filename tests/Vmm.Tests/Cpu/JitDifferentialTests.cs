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
        var program = RandomProgram(random);
        var registers = Compared.Where(r => r is not (Register.RSP or Register.R13 or Register.R15))
            .Select(r => (r, (ulong)random.NextInt64() ^ ((ulong)random.Next() << 40))).ToArray();
        var data = new byte[4096];
        random.NextBytes(data);
        var budget = random.Next(20, 300);

        using var interpreted = Start(ExecutionTier.Interp, program, registers, data);
        using var compiled = Start(ExecutionTier.Jit, program, registers, data);
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

    private static CpuTestMachine Start(ExecutionTier tier, Action<Assembler> program, (Register, ulong)[] registers, byte[] data)
    {
        var machine = CpuTestMachine.With(64, program);
        machine.Cpu.Tier = tier;
        machine.Cpu.JitThreshold = 1;
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

    private static void EmitRandom(Assembler a, Random random)
    {
        var d64 = Destinations64[random.Next(Destinations64.Length)];
        var s64 = Destinations64[random.Next(Destinations64.Length)];
        var d32 = Destinations32[random.Next(Destinations32.Length)];
        var s32 = Destinations32[random.Next(Destinations32.Length)];
        var imm = random.Next(3) == 0 ? random.Next(-4, 4) : random.Next();
        var disp = random.Next(0, 4096 / 8 - 1) * 8;
        var wide = random.Next(2) == 0;
        switch (random.Next(24))
        {
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
