using Hypervisor.Vmm.Accel.Kvm;
using Hypervisor.Vmm.Devices;
using Hypervisor.Vmm.Machine;
using Hypervisor.Vmm.Tests.Support;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Vmm.Tests.Accel.Kvm;

/// <summary>Tiny Iced-assembled guests on the real /dev/kvm through a <see cref="Vm"/>: port I/O, HLT, triple fault, MMIO, timeout and cancel.</summary>
[Category(TestCategories.Kvm)]
public sealed class KvmMachineTests
{
    [SetUp]
    public void RequireKvm() => KvmTestGuest.RequireKvm();

    [Test]
    public void PortIoReachesTheConsoleAndDebugExitStopsTheVm()
    {
        using var guest = KvmTestGuest.Create32(a =>
        {
            a.mov(al, (byte)'o');
            a.@out(0xE9, al);
            a.mov(al, (byte)'k');
            a.@out(0xE9, al);
            a.xor(eax, eax);
            a.@out(0xF4, al);
            a.hlt();
        });

        var result = guest.Run();

        Assert.Multiple(() =>
        {
            Assert.That(result.Kind, Is.EqualTo(VmStopKind.GuestExit), result.ToString());
            Assert.That(result.ExitStatus, Is.EqualTo(1), result.ToString());
            Assert.That(guest.Console.Transcript(), Is.EqualTo("ok"));
            Assert.That(result.BootVcpu.Counters.PortIo, Is.EqualTo(3));
            Assert.That(result.BootVcpu.Counters.Exits, Is.GreaterThanOrEqualTo(3));
            Assert.That(result.Detail, Does.Contain("isa-debug-exit"));
        });
    }

    [Test]
    public void HltStopsTheRunAsHalted()
    {
        using var guest = KvmTestGuest.Create32(a => a.hlt());

        var result = guest.Run();

        Assert.Multiple(() =>
        {
            Assert.That(result.Kind, Is.EqualTo(VmStopKind.Halted), result.ToString());
            Assert.That(result.ExitStatus, Is.EqualTo(VmExitStatus.Halted));
            Assert.That(result.Registers?.Rip, Is.EqualTo(KvmTestGuest.CodeAddress + 1), "RIP is past the one-byte HLT");
        });
    }

    [Test]
    public void UndefinedOpcodeWithAnEmptyIdtTripleFaults()
    {
        using var guest = KvmTestGuest.Create32(a => a.ud2(), state => state with { IdtBase = 0, IdtLimit = 0 });

        var result = guest.Run();

        Assert.Multiple(() =>
        {
            Assert.That(result.Kind, Is.EqualTo(VmStopKind.Shutdown), result.ToString());
            Assert.That(result.ExitStatus, Is.EqualTo(VmExitStatus.Broken));
        });
    }

    [Test]
    public void ApicVersionReadIsAnMmioExitServedByTheBus()
    {
        using var guest = KvmTestGuest.Create32(a =>
        {
            a.mov(eax, __dword_ptr[0xFEE00030u]);
            a.@out(0xF4, al);
            a.hlt();
        });

        var result = guest.Run();
        var rax = result.Registers?.Rax;

        Assert.Multiple(() =>
        {
            Assert.That(result.Kind, Is.EqualTo(VmStopKind.GuestExit), result.ToString());
            Assert.That(result.BootVcpu.Counters.Mmio, Is.EqualTo(1), result.ToString());
            Assert.That(rax, Is.EqualTo((ulong)LocalApic.VersionValue));
            Assert.That(result.ExitStatus, Is.EqualTo(((LocalApic.VersionValue & 0xFF) << 1) | 1));
            Assert.That(guest.Bus.CountersOf(guest.Devices.LocalApic).MmioReads, Is.EqualTo(1));
        });
    }

    [Test]
    public void MmioWriteReachesTheApicStub()
    {
        using var guest = KvmTestGuest.Create32(a =>
        {
            a.mov(__dword_ptr[0xFEE00080u], 0x5A);
            a.hlt();
        });

        var result = guest.Run();

        Assert.Multiple(() =>
        {
            Assert.That(result.Kind, Is.EqualTo(VmStopKind.Halted), result.ToString());
            Assert.That(guest.Devices.LocalApic.ReadRegister(LocalApic.TprRegister), Is.EqualTo(0x5A));
        });
    }

    [Test]
    public void RepOutsbDeliversEveryItem()
    {
        using var guest = KvmTestGuest.Create32(a =>
        {
            a.mov(__dword_ptr[0x2000], 0x6C6C6568);
            a.mov(__byte_ptr[0x2004], (byte)'o');
            a.mov(esi, 0x2000);
            a.mov(ecx, 5);
            a.mov(edx, 0xE9);
            a.rep.outsb();
            a.hlt();
        });

        var result = guest.Run();

        Assert.Multiple(() =>
        {
            Assert.That(result.Kind, Is.EqualTo(VmStopKind.Halted), result.ToString());
            Assert.That(guest.Console.Transcript(), Is.EqualTo("hello"));
        });
    }

    [Test]
    public void SpinningGuestStopsAtTheTimeout()
    {
        using var guest = KvmTestGuest.Create32(
            a =>
            {
                var spin = a.CreateLabel();
                a.Label(ref spin);
                a.jmp(spin);
            },
            limit: TimeSpan.FromMilliseconds(200));

        var result = guest.Run();

        Assert.Multiple(() =>
        {
            Assert.That(result.Kind, Is.EqualTo(VmStopKind.Timeout), result.ToString());
            Assert.That(result.Registers?.Rip, Is.EqualTo(KvmTestGuest.CodeAddress), "the guest was stopped in its loop");
            Assert.That(result.ExitStatus, Is.EqualTo(VmExitStatus.Limit));
            Assert.That(result.Elapsed, Is.LessThan(TimeSpan.FromSeconds(10)));
        });
    }

    [Test]
    public void SpinningGuestStopsWhenCancelled()
    {
        using var guest = KvmTestGuest.Create32(a =>
        {
            var spin = a.CreateLabel();
            a.Label(ref spin);
            a.jmp(spin);
        });
        using var cancel = new CancellationTokenSource(TimeSpan.FromMilliseconds(100));

        var result = guest.Run(cancel.Token);

        Assert.Multiple(() =>
        {
            Assert.That(result.Kind, Is.EqualTo(VmStopKind.Cancelled), result.ToString());
            Assert.That(result.Detail, Does.StartWith("cancelled at RIP 0x"));
        });
    }

    [Test]
    public void RunAfterADeviceStopReturnsAtOnce()
    {
        using var guest = KvmTestGuest.Create32(a =>
        {
            a.mov(al, 2);
            a.@out(0xF4, al);
            a.hlt();
        });

        var first = guest.Run();
        var second = guest.Run();

        Assert.Multiple(() =>
        {
            Assert.That(first.ExitStatus, Is.EqualTo(5), first.ToString());
            Assert.That(second.Kind, Is.EqualTo(VmStopKind.GuestExit));
            Assert.That(second.BootVcpu.Counters.Exits, Is.EqualTo(first.BootVcpu.Counters.Exits), "no KVM_RUN after the stop");
        });
    }

    [Test]
    public void MemoryIsBoundsChecked()
    {
        using var machine = new KvmMachine(1 << 20);
        var buffer = new byte[16];

        var e = Assert.Throws<ArgumentOutOfRangeException>(() => machine.Memory.Read((1 << 20) - 8, buffer));

        Assert.Multiple(() =>
        {
            Assert.That(e!.ParamName, Is.EqualTo("gpa"));
            Assert.That(e.Message, Does.Contain("0xffff8"));
            Assert.That(machine.Memory.Size, Is.EqualTo((ulong)(1 << 20)));
        });
    }

    [Test]
    public void MemoryRoundTripsAndThrowsAfterDispose()
    {
        var machine = new KvmMachine(1 << 20);
        machine.Memory.Write(0x1234, [1, 2, 3]);
        var back = new byte[3];
        machine.Memory.Read(0x1234, back);
        machine.Dispose();

        Assert.Multiple(() =>
        {
            Assert.That(back, Is.EqualTo(new byte[] { 1, 2, 3 }));
            Assert.Throws<ObjectDisposedException>(() => machine.Memory.Read(0, back));
        });
    }
}
