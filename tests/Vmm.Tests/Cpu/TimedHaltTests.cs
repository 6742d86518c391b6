using Hypervisor.Vmm.Cpu;
using Hypervisor.Vmm.Devices;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Vmm.Tests.Cpu;

/// <summary>
/// A HLT with the TSC-deadline timer armed: with one vCPU (no running peer) the clock skips to the deadline; while
/// another vCPU runs, the vCPU halts with the deadline instead and its clock stays where it was, to be moved up to
/// the running vCPUs' clock when it wakes (<see cref="X86Cpu.AdvanceClockTo"/>), so idle vCPUs never race ahead.
/// </summary>
public sealed class TimedHaltTests
{
    private const uint Apic = 0xFEE00000;
    private const ulong Data = CpuTestMachine.DataAddress;
    private const int Vector = 0x40;
    private const uint Delta = 5_000_000;

    private static CpuTestMachine Machine(out Label handler)
    {
        Label h = default;
        var m = CpuTestMachine.With(32, a =>
        {
            h = a.CreateLabel();
            a.mov(__dword_ptr[Apic + LocalApic.SvrRegister], 0x1FF);
            a.mov(__dword_ptr[Apic + 0x320], Vector | (2 << 17)); // LVT timer: TSC-deadline mode
            a.rdtsc();
            a.mov(__dword_ptr[Data + 8], eax);
            a.mov(__dword_ptr[Data + 12], edx);
            a.add(eax, (int)Delta);
            a.adc(edx, 0);
            a.mov(ecx, 0x6E0);
            a.wrmsr();
            a.sti();
            a.hlt();
            a.rdtsc();
            a.mov(__dword_ptr[Data + 16], eax);
            a.mov(__dword_ptr[Data + 20], edx);
            a.cli();
            a.hlt();
            a.Label(ref h);
            a.inc(__dword_ptr[Data]);
            a.mov(__dword_ptr[Apic + LocalApic.EoiRegister], 0);
            a.iretd();
        }, platformDevices: true);
        handler = h;
        return m;
    }

    [Test]
    public void AloneTheClockSkipsToTheDeadline()
    {
        using var m = Machine(out var handler);
        m.SetGate(Vector, m.AddressOf(handler));

        var exit = m.Run();

        Assert.Multiple(() =>
        {
            Assert.That(exit.Detail, Does.Contain("interrupts disabled"), "the final HLT, after the timer's interrupt");
            Assert.That(m.ReadUInt32(Data), Is.EqualTo(1), "the timer fired once");
            Assert.That(m.ReadUInt64(Data + 16) - m.ReadUInt64(Data + 8), Is.GreaterThanOrEqualTo(Delta), "virtual time skipped to the deadline");
            Assert.That(m.Cpu.TimedHaltDeadline, Is.Null);
        });
    }

    [Test]
    public void WithAPeerRunningTheVcpuHaltsUntilTheDeadlineAndCatchesUpWhenTold()
    {
        using var m = Machine(out var handler);
        m.SetGate(Vector, m.AddressOf(handler));
        m.Cpu.PeersRunning = () => true;

        var first = m.Run();
        var halted = m.Cpu.Tsc;
        var deadline = m.Cpu.TimedHaltDeadline;
        var start = (long)m.ReadUInt64(Data + 8);

        Assert.Multiple(() =>
        {
            Assert.That(first.Reason, Is.EqualTo(CpuExitReason.Halted));
            Assert.That(deadline, Is.EqualTo(start + Delta), "the TSC deadline the guest armed");
            Assert.That(halted - start, Is.LessThan(Delta / 100), "the clock did not skip");
            Assert.That(m.ReadUInt32(Data), Is.Zero, "the timer has not fired");
        });

        // A running peer's clock passed the deadline: the sleeper's clock moves up to it, never back.
        m.Cpu.AdvanceClockTo(deadline!.Value + 1000);
        m.Cpu.AdvanceClockTo(start);
        m.Cpu.PeersRunning = null;
        var second = m.Run();

        Assert.Multiple(() =>
        {
            Assert.That(second.Detail, Does.Contain("interrupts disabled"));
            Assert.That(m.ReadUInt32(Data), Is.EqualTo(1), "the timer fired once the clock reached its deadline");
            Assert.That((long)m.ReadUInt64(Data + 16), Is.GreaterThanOrEqualTo(deadline.Value + 1000), "the clock the peer gave it");
        });
    }
}
