using Hypervisor.Vmm.Devices;

namespace Hypervisor.Vmm.Tests.Devices;

public sealed class PcDevicesTests
{
    [Test]
    public void AttachPlacesEveryDeviceAtItsStandardAddress()
    {
        var bus = new DeviceBus();
        var set = PcDevices.Attach(bus, new GuestConsole(), new VmStopSignal(), cpuCount: 2, ramSize: 64UL << 20);

        Assert.Multiple(() =>
        {
            Assert.That(bus.PortOwner(0xE9), Is.SameAs(set.DebugConsole));
            Assert.That(bus.PortOwner(0xF4), Is.SameAs(set.DebugExit));
            Assert.That(bus.PortOwner(0x3F8), Is.SameAs(set.Uart));
            Assert.That(bus.PortOwner(0x3FF), Is.SameAs(set.Uart));
            Assert.That(bus.PortOwner(0x510), Is.SameAs(set.FwCfg));
            Assert.That(bus.PortOwner(0x511), Is.SameAs(set.FwCfg));
            Assert.That(bus.PortOwner(0x21), Is.SameAs(set.Pic));
            Assert.That(bus.PortOwner(0xA1), Is.SameAs(set.Pic));
            Assert.That(bus.PortOwner(0x604), Is.SameAs(set.PowerOff));
            Assert.That(bus.IsMmio(0xFEE00020), Is.True);
            Assert.That(bus.IsMmio(IoApic.BaseAddress + 0x10), Is.True, "the I/O APIC's window");
            Assert.That(bus.PortOwner(0x600), Is.SameAs(set.Pm1Event));
            Assert.That(bus.PortOwner(0x603), Is.SameAs(set.Pm1Event));
            Assert.That(bus.PortOwner(0x608), Is.SameAs(set.PmTimer));
            Assert.That(bus.PortOwner(0x60B), Is.SameAs(set.PmTimer));

            Assert.That(bus.PortOwner(0x40), Is.SameAs(set.Pit));
            Assert.That(bus.PortOwner(0x43), Is.SameAs(set.Pit));
            Assert.That(bus.PortOwner(0x61), Is.SameAs(set.Pit), "port B holds counter 2's gate and OUT");
            Assert.That(bus.PortOwner(0x60), Is.SameAs(set.Keyboard));
            Assert.That(bus.PortOwner(0x64), Is.SameAs(set.Keyboard));
            Assert.That(bus.PortOwner(0x70), Is.SameAs(set.Rtc));
            Assert.That(bus.PortOwner(0x71), Is.SameAs(set.Rtc));
            Assert.That(set.Timers.Timers, Is.EqualTo(new IPlatformTimer[] { set.Pit, set.Rtc }));
            Assert.That(bus.Devices, Has.Count.EqualTo(13));
        });
    }

    [Test]
    public void GuestSessionThroughTheBus()
    {
        // What hello does: probe fw_cfg, print on both consoles, exit with debug-exit value 0 (status 1).
        var bus = new DeviceBus();
        var console = new GuestConsole();
        var stop = new VmStopSignal();
        var set = PcDevices.Attach(bus, console, stop, cpuCount: 1, ramSize: 32UL << 20);

        bus.WritePort(0x510, 2, 0);
        var signature = string.Concat(Enumerable.Range(0, 4).Select(_ => (char)bus.ReadPort(0x511, 1)));
        bus.WritePort(0xE9, 1, 'o');
        while ((bus.ReadPort(0x3FD, 1) & 0x20) == 0)
        {
        }

        bus.WritePort(0x3F8, 1, 'k');
        bus.WritePort(0xF4, 1, 0);

        Assert.That(signature, Is.EqualTo("QEMU"));
        Assert.That(console.Transcript(), Is.EqualTo("ok"));
        Assert.That(stop.Request, Is.EqualTo(new VmStop(VmStopReason.Shutdown, 1, "isa-debug-exit")));
        Assert.That(bus.CountersOf(set.FwCfg), Is.EqualTo(new DeviceCounters(4, 1, 0, 0)));
    }

    [Test]
    public void TheSciDrivesIoApicPin9()
    {
        var bus = new DeviceBus();
        var set = PcDevices.Attach(bus, new GuestConsole(), new VmStopSignal(), cpuCount: 1, ramSize: 32UL << 20);
        set.LocalApic.WriteRegister(LocalApic.SvrRegister, 0x1FF, 0);
        bus.WriteMmio(IoApic.BaseAddress, BitConverter.GetBytes(0x11u + (2 * 9)));
        bus.WriteMmio(IoApic.BaseAddress + 0x10, BitConverter.GetBytes(0u));
        bus.WriteMmio(IoApic.BaseAddress, BitConverter.GetBytes(0x10u + (2 * 9)));
        bus.WriteMmio(IoApic.BaseAddress + 0x10, BitConverter.GetBytes(0x41u | (1u << 15)));
        bus.WritePort(0x602, 2, AcpiPm1Event.PowerButton);

        set.Pm1Event.Signal(AcpiPm1Event.PowerButton);

        Assert.That(set.LocalApic.Acknowledge(), Is.EqualTo(0x41));
    }

    [Test]
    public void AttachingTwiceReportsTheOverlap()
    {
        var bus = new DeviceBus();
        PcDevices.Attach(bus, new GuestConsole(), new VmStopSignal(), 1, 1 << 20);

        var ex = Assert.Throws<OverlappingDeviceException>(() => PcDevices.Attach(bus, new GuestConsole(), new VmStopSignal(), 1, 1 << 20));

        Assert.That(ex!.Message, Does.Contain("'i8259'"));
    }
}
