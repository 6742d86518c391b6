using Iced.Intel;
using static Hypervisor.Vmm.Tests.Cpu.OracleCatalog;
using static Hypervisor.Vmm.Tests.Cpu.Operand;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Vmm.Tests.Cpu;

public sealed class ControlFlowTests
{
    private const ulong Data = CpuTestMachine.DataAddress;

    private static readonly (ConditionCode Condition, Func<ulong, bool> Holds)[] Conditions =
    [
        (ConditionCode.o, f => (f & Of) != 0), (ConditionCode.no, f => (f & Of) == 0),
        (ConditionCode.b, f => (f & Cf) != 0), (ConditionCode.ae, f => (f & Cf) == 0),
        (ConditionCode.e, f => (f & Zf) != 0), (ConditionCode.ne, f => (f & Zf) == 0),
        (ConditionCode.be, f => (f & (Cf | Zf)) != 0), (ConditionCode.a, f => (f & (Cf | Zf)) == 0),
        (ConditionCode.s, f => (f & Sf) != 0), (ConditionCode.ns, f => (f & Sf) == 0),
        (ConditionCode.p, f => (f & Pf) != 0), (ConditionCode.np, f => (f & Pf) == 0),
        (ConditionCode.l, f => ((f & Sf) != 0) != ((f & Of) != 0)), (ConditionCode.ge, f => ((f & Sf) != 0) == ((f & Of) != 0)),
        (ConditionCode.le, f => (f & Zf) != 0 || ((f & Sf) != 0) != ((f & Of) != 0)), (ConditionCode.g, f => (f & Zf) == 0 && ((f & Sf) != 0) == ((f & Of) != 0)),
    ];

    private static IEnumerable<int> ConditionIndexes() => Enumerable.Range(0, 16);

    [Test]
    public void JccIsTakenExactlyWhenItsConditionHolds([ValueSource(nameof(ConditionIndexes))] int index, [Values(32, 64)] int bitness)
    {
        var (condition, holds) = Conditions[index];
        var jump = typeof(Assembler).GetMethod($"j{condition}", [typeof(Label)])!;
        using var m = CpuTestMachine.With(bitness, a =>
        {
            var shortTarget = a.CreateLabel();
            var nearTarget = a.CreateLabel();
            jump.Invoke(a, [shortTarget]);
            a.mov(eax, 1);
            a.Label(ref shortTarget);
            a.nop();
            jump.Invoke(a, [nearTarget]);
            a.mov(ecx, 1);
            for (var n = 0; n < 160; n++)
            {
                a.nop();
            }

            a.Label(ref nearTarget);
            a.hlt();
        });
        var flagSets = new ulong[] { 0, Cf, Zf, Sf, Of, Pf, Sf | Of, Zf | Cf, Arithmetic, Zf | Sf };
        foreach (var flags in flagSets)
        {
            m.RunFromStart(flags | 2);
            var expected = holds(flags) ? 0UL : 1UL;
            Assert.That((m[Register.EAX], m[Register.ECX]), Is.EqualTo((expected, expected)), $"j{condition} (rel8 and rel32) with flags 0x{flags:x}");
        }
    }

    [Test]
    public void SetccWritesOneOrZeroToRegistersAndMemory([ValueSource(nameof(ConditionIndexes))] int index, [Values(32, 64)] int bitness)
    {
        var (condition, holds) = Conditions[index];
        var code = Enum.Parse<Code>($"Set{condition}_rm8");
        using var m = CpuTestMachine.With(bitness, a =>
        {
            a.AddInstruction(Instruction.Create(code, Register.AH));
            a.AddInstruction(Instruction.Create(code, new MemoryOperand(bitness == 64 ? Register.RBX : Register.EBX)));
            a.hlt();
        });
        foreach (var flags in new ulong[] { 0, Cf, Zf, Sf, Of, Pf, Sf | Of, Arithmetic })
        {
            m.WriteBytes(Data, [0xEE]);
            m.RunFromStart(flags | 2, (Register.RBX, Data), (Register.RAX, 0xFFFF));
            var expected = holds(flags) ? 1UL : 0UL;
            Assert.That(m[Register.AX], Is.EqualTo((expected << 8) | 0xFF), $"set{condition} ah, flags 0x{flags:x}");
            Assert.That(m.ReadByte(Data), Is.EqualTo(expected), $"set{condition} [mem], flags 0x{flags:x}");
        }
    }

    [Test]
    public void CmovWithAFalseConditionStillZeroExtendsA32BitDestination()
    {
        using var m = CpuTestMachine.Execute(64, a =>
        {
            a.mov(rax, -1L);
            a.mov(rcx, 0x1234L);
            a.xor(edx, edx);
            a.cmovne(eax, ecx);
            a.mov(rsi, -1L);
            a.cmove(rsi, __qword_ptr[rbx]);
            a.mov(rdi, -1L);
            a.cmovne(rdi, rcx);
            a.hlt();
        }, m =>
        {
            PointAtData(m);
            m.WriteUInt64(Data, 0x5555_6666_7777_8888UL);
        });
        Assert.Multiple(() =>
        {
            Assert.That(m[Register.RAX], Is.EqualTo(0xFFFF_FFFFUL));
            Assert.That(m[Register.RSI], Is.EqualTo(0x5555_6666_7777_8888UL));
            Assert.That(m[Register.RDI], Is.EqualTo(ulong.MaxValue));
        });
    }

    [Test]
    public void NearCallRetAndIndirectJumpsAndCalls([Values(32, 64)] int bitness)
    {
        Label[] targets = [];
        using var m = CpuTestMachine.With(bitness, a =>
        {
            var function = a.CreateLabel();
            var viaRegister = a.CreateLabel();
            var viaMemory = a.CreateLabel();
            var jumpedToRegister = a.CreateLabel();
            var jumpedToMemory = a.CreateLabel();
            var cleanup = a.CreateLabel();
            a.call(function);
            a.add(ecx, 1);
            if (bitness == 64)
            {
                a.mov(rdx, __qword_ptr[rbx]);
                a.call(rdx);
                a.call(__qword_ptr[rbx + 8]);
                a.mov(rdx, __qword_ptr[rbx + 16]);
                a.jmp(rdx);
            }
            else
            {
                a.mov(edx, __dword_ptr[ebx]);
                a.call(edx);
                a.call(__dword_ptr[ebx + 8]);
                a.mov(edx, __dword_ptr[ebx + 16]);
                a.jmp(edx);
            }

            a.hlt();
            a.Label(ref jumpedToRegister);
            if (bitness == 64)
            {
                a.jmp(__qword_ptr[rbx + 24]);
            }
            else
            {
                a.jmp(__dword_ptr[ebx + 24]);
            }

            a.hlt();
            a.Label(ref jumpedToMemory);
            a.push(0x1111);
            a.push(0x2222);
            a.call(cleanup);
            a.mov(edi, 0x600D);
            a.hlt();
            a.Label(ref function);
            a.mov(ecx, 10);
            a.ret();
            a.Label(ref viaRegister);
            a.add(ecx, 100);
            a.ret();
            a.Label(ref viaMemory);
            a.add(ecx, 1000);
            a.ret();
            a.Label(ref cleanup);
            a.ret((short)(bitness == 64 ? 16 : 8));
            targets = [viaRegister, viaMemory, jumpedToRegister, jumpedToMemory];
        });
        PointAtData(m);
        for (var n = 0; n < targets.Length; n++)
        {
            m.WriteUInt64(Data + (ulong)(n * 8), m.AddressOf(targets[n]));
        }

        var stackPointer = StackPointer(bitness);
        var initialSp = m[stackPointer];
        m.RunToHalt();
        Assert.Multiple(() =>
        {
            Assert.That(m[Register.ECX], Is.EqualTo(1111));
            Assert.That(m[Register.EDI], Is.EqualTo(0x600D));
            Assert.That(m[stackPointer], Is.EqualTo(initialSp), "RET imm16 released the two pushed arguments");
        });
    }

    [TestCase(32, 5u, 5u, 0u)]
    [TestCase(64, 5u, 5u, 0u)]
    [TestCase(32, 1u, 1u, 0u)]
    public void LoopDecrementsTheCounterUntilZero(int bitness, uint count, uint expectedIterations, uint expectedCounter)
    {
        using var m = CpuTestMachine.Execute(bitness, a =>
        {
            var top = a.CreateLabel();
            a.Label(ref top);
            a.inc(eax);
            a.loop(top);
            a.hlt();
        }, m => m[Register.RCX] = count);
        Assert.That((m[Register.EAX], m[Register.RCX]), Is.EqualTo(((ulong)expectedIterations, (ulong)expectedCounter)));
    }

    [Test]
    public void LoopeAndLoopneStopOnZeroFlag([Values(32, 64)] int bitness)
    {
        using var m = CpuTestMachine.Execute(bitness, a =>
        {
            var equalLoop = a.CreateLabel();
            var notEqualLoop = a.CreateLabel();
            a.mov(ecx, 10);
            a.Label(ref equalLoop);
            a.inc(eax);
            a.cmp(eax, 3);
            a.loope(equalLoop);
            a.mov(esi, ecx);
            a.mov(ecx, 10);
            a.xor(edx, edx);
            a.Label(ref notEqualLoop);
            a.inc(edx);
            a.cmp(edx, 4);
            a.loopne(notEqualLoop);
            a.hlt();
        });
        Assert.Multiple(() =>
        {
            Assert.That(m[Register.EAX], Is.EqualTo(1), "LOOPE leaves after the first unequal compare");
            Assert.That(m[Register.ESI], Is.EqualTo(9));
            Assert.That(m[Register.EDX], Is.EqualTo(4), "LOOPNE leaves once the compare is equal");
            Assert.That(m[Register.ECX], Is.EqualTo(6));
        });
    }

    [TestCase(32, 0UL, true)]
    [TestCase(32, 0x1_0000_0000UL, true)]
    [TestCase(32, 1UL, false)]
    [TestCase(64, 0UL, true)]
    [TestCase(64, 0x1_0000_0000UL, false)]
    public void JecxzAndJrcxzTestTheWholeCounterOfTheirSize(int bitness, ulong counter, bool taken)
    {
        using var m = CpuTestMachine.Execute(bitness, a =>
        {
            var skip = a.CreateLabel();
            if (bitness == 64)
            {
                a.jrcxz(skip);
            }
            else
            {
                a.jecxz(skip);
            }

            a.mov(eax, 1);
            a.Label(ref skip);
            a.hlt();
        }, m => m[Register.RCX] = counter);
        Assert.That(m[Register.EAX], Is.EqualTo(taken ? 0 : 1));
    }

    [Test]
    public void JecxzInLongModeIgnoresTheUpperHalf()
    {
        using var m = CpuTestMachine.Execute(64, a =>
        {
            a.db(0x67, 0xE3, 0x05);
            a.mov(eax, 1);
            a.hlt();
        }, m => m[Register.RCX] = 0x1_0000_0000UL);
        Assert.That(m[Register.EAX], Is.EqualTo(0));
    }
}
