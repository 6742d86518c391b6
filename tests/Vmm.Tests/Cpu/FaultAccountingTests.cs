using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Vmm.Tests.Cpu;

/// <summary>
/// A fault in an instruction on the interpreter's inlined fast path (which does not record RIP per instruction)
/// still reports the faulting instruction's RIP and retires exactly the instructions before it.
/// </summary>
public sealed class FaultAccountingTests
{
    [Test]
    public void FastPathLoadFaultPushesItsOwnRipAndRetiresOnlyTheInstructionsBeforeIt()
    {
        Label faulting = default, handler = default;
        using var m = CpuTestMachine.With(64, a =>
        {
            faulting = a.CreateLabel();
            handler = a.CreateLabel();
            a.mov(rbx, unchecked((long)0x8000_0000_0000_0000UL));
            a.mov(ecx, 1);
            a.Label(ref faulting);
            a.mov(rax, __qword_ptr[rbx]);
            a.mov(edi, 1);
            a.hlt();
            a.Label(ref handler);
            a.mov(esi, 0x0D);
            a.hlt();
        });
        m.SetGate(13, m.AddressOf(handler));
        var before = m.Cpu.InstructionsRetired;

        m.RunToHalt();

        Assert.Multiple(() =>
        {
            Assert.That(m[Register.ESI], Is.EqualTo(0x0D), "the non-canonical load raised #GP");
            Assert.That(m[Register.EDI], Is.Zero, "nothing after the faulting load ran");
            Assert.That(m.StackSlot(0), Is.Zero, "#GP(0) error code");
            Assert.That(m.StackSlot(1), Is.EqualTo(m.AddressOf(faulting)), "the pushed RIP is the faulting MOV's");
            Assert.That(m.Cpu.InstructionsRetired - before, Is.EqualTo(4), "two MOVs before the fault, MOV and HLT in the handler");
        });
    }
}
