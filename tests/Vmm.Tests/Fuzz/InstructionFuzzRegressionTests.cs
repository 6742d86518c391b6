using System.Diagnostics;
using Hypervisor.Vmm.Cpu;
using Hypervisor.Vmm.Tests.Cpu;
using Iced.Intel;

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
}
