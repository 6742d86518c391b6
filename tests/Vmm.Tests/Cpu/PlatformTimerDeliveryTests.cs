using Hypervisor.Vmm.Cpu;
using Hypervisor.Vmm.Devices;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Vmm.Tests.Cpu;

/// <summary>
/// The PIT's IRQ0 through I/O APIC pin 2 to the boot vCPU on its virtual clock: taken at block boundaries while the
/// guest spins, and waking HLT (the clock skips to the PIT's next tick); a masked pin cannot wake a halt.
/// </summary>
public sealed class PlatformTimerDeliveryTests
{
    private const uint Apic = 0xFEE00000;
    private const uint IoApicBase = 0xFEC00000;
    private const ulong Data = CpuTestMachine.DataAddress;
    private const int Vector = 0x30;

    private static void Setup(Assembler a, int count, bool masked = false)
    {
        a.mov(__dword_ptr[Apic + LocalApic.SvrRegister], 0x1FF);
        a.mov(__dword_ptr[IoApicBase], 0x10 + (2 * Pit8254.IoApicPin));
        a.mov(__dword_ptr[IoApicBase + 0x10], Vector | (masked ? 0x1_0000 : 0)); // edge, fixed, physical, APIC 0
        a.mov(al, 0x34); // counter 0, LSB then MSB, mode 2
        a.@out(0x43, al);
        a.mov(al, (byte)count);
        a.@out(0x40, al);
        a.mov(al, (byte)(count >> 8));
        a.@out(0x40, al);
    }

    private static void Handler(Assembler a, ref Label handler)
    {
        a.Label(ref handler);
        a.inc(__dword_ptr[Data]);
        a.mov(__dword_ptr[Apic + LocalApic.EoiRegister], 0);
        a.iretd();
    }

    [Test]
    public void HltWakesOnEachPitTickAndTheClockSkipsToIt()
    {
        Label handler = default, loop = default;
        using var m = CpuTestMachine.With(32, a =>
        {
            handler = a.CreateLabel();
            loop = a.CreateLabel();
            Setup(a, 11932); // 10 ms
            a.rdtsc();
            a.mov(__dword_ptr[Data + 8], eax);
            a.sti();
            a.Label(ref loop);
            a.hlt();
            a.cmp(__dword_ptr[Data], 5);
            a.jb(loop);
            a.cli();
            a.rdtsc();
            a.mov(__dword_ptr[Data + 12], eax);
            a.hlt();
            Handler(a, ref handler);
        }, platformDevices: true);
        m.SetGate(Vector, m.AddressOf(handler));

        var exit = m.Run();
        var elapsed = m.ReadUInt32(Data + 12) - m.ReadUInt32(Data + 8);

        Assert.Multiple(() =>
        {
            Assert.That(exit.Reason, Is.EqualTo(CpuExitReason.Halted), exit.Detail);
            Assert.That(exit.Detail, Does.Contain("interrupts disabled"));
            Assert.That(m.ReadUInt32(Data), Is.EqualTo(5));
            Assert.That(elapsed, Is.EqualTo(50_000_000).Within(10_000), "five 10 ms periods of virtual time (1 ns per TSC tick)");
            Assert.That(m.Cpu.Stats.HaltWakeups, Is.EqualTo(5));
            Assert.That(m.Devices.Pit.InterruptPulses, Is.EqualTo(5));
        });
    }

    [Test]
    public void SpinningGuestTakesPitInterruptsAtBlockBoundaries()
    {
        Label handler = default, loop = default;
        using var m = CpuTestMachine.With(32, a =>
        {
            handler = a.CreateLabel();
            loop = a.CreateLabel();
            Setup(a, 1193); // 1 ms
            a.sti();
            a.Label(ref loop);
            a.cmp(__dword_ptr[Data], 3);
            a.jb(loop);
            a.cli();
            a.hlt();
            Handler(a, ref handler);
        }, platformDevices: true);
        m.SetGate(Vector, m.AddressOf(handler));

        var exit = m.Run(20_000_000);

        Assert.Multiple(() =>
        {
            Assert.That(exit.Reason, Is.EqualTo(CpuExitReason.Halted), exit.Detail);
            Assert.That(m.ReadUInt32(Data), Is.EqualTo(3));
            Assert.That(m.Cpu.Stats.HaltWakeups, Is.Zero, "no HLT: the interrupts came while spinning");
            Assert.That(m.Cpu.VirtualTime, Is.InRange(Pit8254.TicksToNanoseconds(3 * 1193), Pit8254.TicksToNanoseconds(3 * 1193) + 1_000), "the third tick is 3 × 1193 input-clock ticks in, taken within a few blocks");
        });
    }

    [Test]
    public void HltWithThePitPinMaskedCannotBeWoken()
    {
        using var m = CpuTestMachine.With(32, a =>
        {
            Setup(a, 1193, masked: true);
            a.sti();
            a.hlt();
        }, platformDevices: true);

        var exit = m.Run();

        Assert.Multiple(() =>
        {
            Assert.That(exit.Reason, Is.EqualTo(CpuExitReason.Halted));
            Assert.That(exit.Detail, Does.Contain("no interrupt pending or timer armed"));
        });
    }
}
