using System.Diagnostics;
using Hypervisor.Vmm.Cpu;
using Hypervisor.Vmm.Tests.Cpu;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Vmm.Tests.Fuzz;

/// <summary>The interpreter bugs the instruction fuzzer found, each as the smallest program that showed it.</summary>
public sealed class InstructionFuzzRegressionTests
{
    // Fuzz seed 1 000 740 (32-bit): REP OUTSD with ECX = 0xFFFFFFFF. A repeated string instruction runs in chunks of
    // 4 096 iterations, but an unfinished chunk did not count against the run's budget, so Run(10 000) went on for
    // 2^32 port writes (minutes) instead of returning.
    [TestCase(32)]
    [TestCase(64)]
    public void RepOutsWithAHugeCountReturnsWithinTheBudget(int bitness)
    {
        using var m = CpuTestMachine.With(bitness, a =>
        {
            a.rep.outsd();
            a.hlt();
        });
        m[Register.RCX] = bitness == 64 ? ulong.MaxValue : uint.MaxValue;
        m[Register.RDX] = 0x15EB;
        m[Register.RSI] = CpuTestMachine.DataAddress;
        var clock = Stopwatch.StartNew();

        var exit = m.Run(100);

        Assert.Multiple(() =>
        {
            Assert.That(exit.Reason, Is.EqualTo(CpuExitReason.BudgetExhausted));
            Assert.That(clock.Elapsed, Is.LessThan(TimeSpan.FromSeconds(20)));
            Assert.That(m.Cpu.Rip, Is.EqualTo(CpuTestMachine.CodeAddress), "the unfinished REP OUTS stays on itself");
            Assert.That(m[Register.RCX], Is.EqualTo((bitness == 64 ? ulong.MaxValue : uint.MaxValue) - (100UL * X86Cpu.RepDeviceChunk)), "a chunk of port writes is RepDeviceChunk long");
        });
    }

    // Fuzz seed 1 088 144 (32-bit): REPNE LODSB with ECX = 0x200FFF from RAM, then LOOPNE back to it with ECX wrapped to
    // 0xFFFFFFFF. A budget unit was 4 096 element iterations (~0.1-0.3 µs each, more on a loaded machine), so the
    // fuzzer's 10 000 took over its watchdog's 20 s; a unit is now RepChunk iterations.
    [Test]
    public void RepLodsWithAHugeCountDoesRepChunkElementsPerBudgetUnit()
    {
        const ulong count = 0x20_0FFF;
        using var m = CpuTestMachine.With(32, a =>
        {
            a.repne.lodsb();
            a.hlt();
        });
        m[Register.RCX] = count;
        m[Register.RSI] = 0x1F_9288;
        var clock = Stopwatch.StartNew();

        var exit = m.Run(100);

        Assert.Multiple(() =>
        {
            Assert.That(exit.Reason, Is.EqualTo(CpuExitReason.BudgetExhausted));
            Assert.That(m[Register.RCX], Is.EqualTo(count - (100UL * X86Cpu.RepChunk)));
            Assert.That(m[Register.RSI], Is.EqualTo(0x1F_9288 + (100UL * X86Cpu.RepChunk)));
            Assert.That(X86Cpu.RepChunk, Is.LessThanOrEqualTo(1024), "10 000 units of element iterations stay within seconds on a loaded machine");
            Assert.That(clock.Elapsed, Is.LessThan(TimeSpan.FromSeconds(5)));
        });
    }

    // Fuzz seed 1 056 841 (64-bit): the code wrote a PML4 entry pointing into MMIO, then faulted; delivering the fault
    // read the IDT through that entry, the walk failed the VM (page table in MMIO), and the VmFailureException escaped
    // X86Cpu.Run from inside the handler of the guest exception instead of becoming the run's exit.
    [Test]
    public void AVmFailureWhileDeliveringAnExceptionIsTheRunsExitNotAnEscapedException()
    {
        using var m = CpuTestMachine.With(64, a =>
        {
            a.mov(__qword_ptr[rdi], rax);
            a.ud2();
            a.hlt();
        });
        m[Register.RDI] = Hypervisor.Vmm.Boot.LongModeBoot.Pml4Address;
        m[Register.RAX] = 0xFFFF_7003; // present, writable: a PDPT at a guest-physical address no RAM backs

        var exit = m.Run(100);

        Assert.Multiple(() =>
        {
            Assert.That(exit.Reason, Is.EqualTo(CpuExitReason.InternalError));
            Assert.That(exit.Detail, Does.Contain("PageTableInMmio").And.Contain("linear 0x1060"), "the walk for #UD's IDT gate (0x1000 + 6 * 16)");
        });
    }
}
