using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Vmm.Tests.Cpu;

public sealed class SelfModifyingCodeTests
{
    [Test]
    public void StoreIntoAlreadyExecutedCodeRunsTheNewBytesNextTime([Values(32, 64)] int bitness)
    {
        Label patched = default;
        using var m = CpuTestMachine.With(bitness, a =>
        {
            patched = a.CreateLabel();
            var done = a.CreateLabel();
            a.Label(ref patched);
            a.mov(eax, 1);
            a.add(edi, eax);
            a.cmp(ecx, 1);
            a.je(done);
            a.inc(ecx);
            a.mov(bitness == 64 ? __byte_ptr[rbx] : __byte_ptr[ebx], 2);
            a.jmp(patched);
            a.Label(ref done);
            a.hlt();
        });
        m[Register.RBX] = m.AddressOf(patched) + 1;
        var invalidationsBefore = m.CodeMap.Invalidations;
        m.RunToHalt();
        Assert.Multiple(() =>
        {
            Assert.That(m[Register.EAX], Is.EqualTo(2));
            Assert.That(m[Register.EDI], Is.EqualTo(3), "old bytes once, new bytes once");
            Assert.That(m.CodeMap.Invalidations, Is.GreaterThan(invalidationsBefore));
        });
    }

    [Test]
    public void StoreIntoTheNextInstructionOfTheRunningBlockTakesEffect([Values(32, 64)] int bitness)
    {
        Label patched = default;
        using var m = CpuTestMachine.With(bitness, a =>
        {
            patched = a.CreateLabel();
            a.mov(bitness == 64 ? __byte_ptr[rbx] : __byte_ptr[ebx], 7);
            a.Label(ref patched);
            a.mov(eax, 1);
            a.hlt();
        });
        m[Register.RBX] = m.AddressOf(patched) + 1;
        m.RunToHalt();
        Assert.That(m[Register.EAX], Is.EqualTo(7));
    }
}
