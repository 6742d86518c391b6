using System.Buffers.Binary;
using Hypervisor.Vmm.Devices;

namespace Hypervisor.Vmm.Tests.Devices;

/// <summary>
/// The I/O APIC: its indirect registers (ID, version, redirection entries with read-only delivery status and remote
/// IRR), masked at reset, edge pins sending on each rising edge, level pins sending once until the local APIC's EOI
/// (broadcast for a level-triggered vector) or a directed EOI clears remote IRR, and COM1's interrupt through pin 4.
/// </summary>
public sealed class IoApicTests
{
    private const int Pin = 4;
    private InterruptRouter _router = null!;
    private IoApic _ioApic = null!;

    [SetUp]
    public void SetUp()
    {
        _router = new InterruptRouter(2);
        foreach (var apic in _router.Apics)
        {
            apic.WriteRegister(LocalApic.SvrRegister, 0x1FF, 0);
        }

        _ioApic = new IoApic(_router);
    }

    [Test]
    public void TheVersionRegisterNamesTwentyFourEntriesAndEveryEntryStartsMasked()
    {
        Assert.Multiple(() =>
        {
            Assert.That(ReadRegister(1), Is.EqualTo(IoApic.VersionValue));
            Assert.That((IoApic.VersionValue >> 16) & 0xFF, Is.EqualTo(IoApic.Pins - 1));
            Assert.That(Enumerable.Range(0, IoApic.Pins).Select(pin => _ioApic.EntryOf(pin) & IoApic.Masked), Is.All.EqualTo(IoApic.Masked));
        });
        _ioApic.SetLine(Pin, true);
        Assert.That(_ioApic.Sent, Is.Zero, "a masked pin sends nothing");
    }

    [Test]
    public void AnEdgePinSendsItsVectorToItsDestinationOnEachRisingEdge()
    {
        Program(Pin, vector: 0x34, destination: 1);

        _ioApic.SetLine(Pin, true);
        _ioApic.SetLine(Pin, true);
        Assert.Multiple(() =>
        {
            Assert.That(_router.ApicOf(1).IsRequested(0x34), Is.True);
            Assert.That(_router.ApicOf(0).IsRequested(0x34), Is.False, "physical destination 1 only");
            Assert.That(_ioApic.Sent, Is.EqualTo(1), "a line held high is one edge");
        });
        _ioApic.SetLine(Pin, false);
        _ioApic.SetLine(Pin, true);
        Assert.That(_ioApic.Sent, Is.EqualTo(2));
    }

    [Test]
    public void ALevelPinSendsOnceUntilTheLocalApicsEoiClearsRemoteIrrAndAgainIfStillAsserted()
    {
        Program(Pin, vector: 0x41, destination: 0, level: true);
        var apic = _router.ApicOf(0);

        _ioApic.SetLine(Pin, true);
        Assert.That(_ioApic.EntryOf(Pin) & (1UL << 14), Is.Not.Zero, "remote IRR set on delivery");
        Assert.That(apic.Acknowledge(), Is.EqualTo(0x41));
        _ioApic.SetLine(Pin, true);
        Assert.That(_ioApic.Sent, Is.EqualTo(1), "no resend while remote IRR is set");

        apic.WriteRegister(LocalApic.EoiRegister, 0, 0);

        Assert.Multiple(() =>
        {
            Assert.That(_ioApic.Sent, Is.EqualTo(2), "the EOI broadcast found the pin still asserted and it sent again");
            Assert.That(apic.IsRequested(0x41), Is.True);
        });
        Assert.That(apic.Acknowledge(), Is.EqualTo(0x41));
        _ioApic.SetLine(Pin, false);
        apic.WriteRegister(LocalApic.EoiRegister, 0, 0);
        Assert.Multiple(() =>
        {
            Assert.That(_ioApic.Sent, Is.EqualTo(2), "deasserted before the EOI: nothing more");
            Assert.That(_ioApic.EntryOf(Pin) & (1UL << 14), Is.Zero, "remote IRR cleared");
        });
    }

    [Test]
    public void DeliveryStatusAndRemoteIrrAreReadOnlyAndTheDestinationIsTheHighByte()
    {
        WriteRegister(0x10 + (2 * Pin), 0x3FFFF); // every low bit, including 12 and 14
        WriteRegister(0x11 + (2 * Pin), 0xFFFF_FFFF);

        Assert.Multiple(() =>
        {
            Assert.That(ReadRegister(0x10 + (2 * Pin)) & ((1u << 12) | (1u << 14)), Is.Zero);
            Assert.That(ReadRegister(0x11 + (2 * Pin)), Is.EqualTo(0xFF00_0000u), "only bits 63:56 are the destination");
        });
    }

    [Test]
    public void Com1ReceivingDataRaisesItsInterruptThroughPinFourWhenEnabledAndOut2IsSet()
    {
        var console = new GuestConsole();
        var bus = new DeviceBus();
        var stop = new VmStopSignal();
        var devices = PcDevices.Attach(bus, console, stop, 1, 16UL << 20);
        var apic = devices.Interrupts.ApicOf(0);
        apic.WriteRegister(LocalApic.SvrRegister, 0x1FF, 0);
        bus.WriteMmio(IoApic.BaseAddress, Bytes(0x10 + (2 * IoApic.Com1Pin)));
        bus.WriteMmio(IoApic.BaseAddress + 0x10, Bytes(0x24)); // vector 0x24, fixed, edge, unmasked, to APIC 0
        bus.WritePort(Uart16550.Com1 + 1, 1, 0x01);         // IER: received data available

        devices.Uart.EnqueueInput("x");
        Assert.That(apic.IsRequested(0x24), Is.False, "OUT2 clear: the PC's IRQ gate is closed");

        bus.WritePort(Uart16550.Com1 + 4, 1, 0x08);         // MCR: OUT2
        Assert.Multiple(() =>
        {
            Assert.That(devices.Uart.InterruptAsserted, Is.True);
            Assert.That(apic.IsRequested(0x24), Is.True, "the UART's line reached the local APIC through pin 4");
        });

        Assert.That(bus.ReadPort(Uart16550.Com1, 1), Is.EqualTo((uint)'x'));
        Assert.That(devices.Uart.InterruptAsserted, Is.False, "reading the last byte lowers the line");
    }

    private void Program(int pin, byte vector, byte destination, bool level = false)
    {
        WriteRegister((uint)(0x11 + (2 * pin)), (uint)destination << 24);
        WriteRegister((uint)(0x10 + (2 * pin)), vector | (level ? 1u << 15 : 0));
    }

    private void WriteRegister(uint index, uint value)
    {
        _ioApic.Write(0x00, Bytes(index));
        _ioApic.Write(0x10, Bytes(value));
    }

    private uint ReadRegister(uint index)
    {
        _ioApic.Write(0x00, Bytes(index));
        Span<byte> data = stackalloc byte[4];
        _ioApic.Read(0x10, data);
        return BinaryPrimitives.ReadUInt32LittleEndian(data);
    }

    private static byte[] Bytes(uint value)
    {
        var bytes = new byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(bytes, value);
        return bytes;
    }
}
