using Hypervisor.Vmm.Devices;

namespace Hypervisor.Vmm.Tests.Devices;

public sealed class DeviceBusTests
{
    [Test]
    public void LogCategoryIsTheDevicesNamespace()
    {
        var category = DeviceBus.LogCategory;

        Assert.That(category, Is.EqualTo("Hypervisor.Vmm.Devices"));
        Assert.That(category, Is.EqualTo(typeof(DeviceBus).Namespace));
    }

    [TestCase(1, 0x12345678u, 0x78u)]
    [TestCase(2, 0x12345678u, 0x5678u)]
    [TestCase(4, 0x12345678u, 0x12345678u)]
    public void ReadGoesWholeToTheOwnerAndIsTruncatedToTheSize(int size, uint deviceValue, uint expected)
    {
        var bus = new DeviceBus();
        var dev = new FakePortDevice("dev", deviceValue);
        bus.RegisterPorts(0x100, 4, dev);

        Assert.That(bus.ReadPort(0x100, size), Is.EqualTo(expected));
        Assert.That(dev.Accesses, Is.EqualTo(new[] { ("read", (ushort)0x100, size, 0u) }));
    }

    [TestCase(1, 0xAABBCCDDu, 0xDDu)]
    [TestCase(2, 0xAABBCCDDu, 0xCCDDu)]
    [TestCase(4, 0xAABBCCDDu, 0xAABBCCDDu)]
    public void WriteValueIsMaskedToTheSize(int size, uint value, uint expected)
    {
        var bus = new DeviceBus();
        var dev = new FakePortDevice("dev");
        bus.RegisterPorts(0x100, 4, dev);

        bus.WritePort(0x100, size, value);

        Assert.That(dev.Accesses, Is.EqualTo(new[] { ("write", (ushort)0x100, size, expected) }));
    }

    [TestCase(0)]
    [TestCase(3)]
    [TestCase(8)]
    [TestCase(-1)]
    public void PortAccessSizesOtherThan124AreRejected(int size)
    {
        var bus = new DeviceBus();

        var read = Assert.Throws<InvalidAccessSizeException>(() => bus.ReadPort(0x80, size));
        Assert.That(read!.Message, Does.Contain($"access size {size}").And.Contain("1, 2 or 4 bytes"));
        Assert.Throws<InvalidAccessSizeException>(() => bus.WritePort(0x80, size, 0));
    }

    [TestCase(1, 0xFFu)]
    [TestCase(2, 0xFFFFu)]
    [TestCase(4, 0xFFFFFFFFu)]
    public void UnknownPortReadsAllOnesOfTheAccessSize(int size, uint expected)
    {
        var bus = new DeviceBus();

        Assert.That(bus.ReadPort(0x1234, size), Is.EqualTo(expected));
    }

    [Test]
    public void UnknownPortWritesAreIgnoredAndCounted()
    {
        var bus = new DeviceBus();
        var dev = new FakePortDevice("dev");
        bus.RegisterPorts(0x100, 1, dev);

        bus.WritePort(0x200, 1, 0x42);

        Assert.That(dev.Accesses, Is.Empty);
        Assert.That(bus.UnknownCounters, Is.EqualTo(new DeviceCounters(0, 1, 0, 0)));
    }

    [Test]
    public void EachUnknownPortIsLoggedOnce()
    {
        var logger = new RecordingLogger();
        var bus = new DeviceBus(logger);

        bus.ReadPort(0x1234, 1);
        bus.ReadPort(0x1234, 1);
        bus.WritePort(0x1234, 1, 7);
        bus.WritePort(0x4321, 1, 7);
        bus.WritePort(0x4321, 1, 8);

        var messages = logger.Messages.ToList();
        Assert.That(messages, Has.Count.EqualTo(2));
        Assert.That(messages[0], Does.Contain("0x1234").And.Contain("unknown I/O port"));
        Assert.That(messages[1], Does.Contain("0x4321"));
        Assert.That(bus.UnknownCounters, Is.EqualTo(new DeviceCounters(2, 3, 0, 0)));
    }

    [Test]
    public void WideUnknownAccessLogsEachPortOnce()
    {
        var logger = new RecordingLogger();
        var bus = new DeviceBus(logger);

        bus.ReadPort(0x300, 4);
        bus.ReadPort(0x300, 4);

        Assert.That(logger.Messages.Count(), Is.EqualTo(4));
        foreach (var port in new[] { "0x0300", "0x0301", "0x0302", "0x0303" })
        {
            Assert.That(logger.Messages.Count(m => m.Contains(port, StringComparison.Ordinal)), Is.EqualTo(1), port);
        }
    }

    [Test]
    public void AccessStraddlingADeviceEndIsSplitIntoBytes()
    {
        var bus = new DeviceBus();
        var dev = new FakePortDevice("dev", 0xAB);
        bus.RegisterPorts(0x100, 2, dev);

        Assert.That(bus.ReadPort(0x101, 2), Is.EqualTo(0xFFABu), "0x101 from the device, 0x102 unknown");
        bus.WritePort(0x0FF, 4, 0x44332211);

        Assert.That(dev.Accesses, Is.EqualTo(new[]
        {
            ("read", (ushort)0x101, 1, 0u),
            ("write", (ushort)0x100, 1, 0x22u),
            ("write", (ushort)0x101, 1, 0x33u),
        }));
    }

    [Test]
    public void AccessSpanningTwoDevicesReachesEachByByte()
    {
        var bus = new DeviceBus();
        var a = new FakePortDevice("a", 0x11);
        var b = new FakePortDevice("b", 0x22);
        bus.RegisterPorts(0x100, 1, a);
        bus.RegisterPorts(0x101, 1, b);

        Assert.That(bus.ReadPort(0x100, 2), Is.EqualTo(0x2211u));
    }

    [Test]
    public void AccessPastPortFFFFReadsOnesForTheMissingBytes()
    {
        var bus = new DeviceBus();
        var dev = new FakePortDevice("top", 0x5A);
        bus.RegisterPorts(0xFFFF, 1, dev);

        Assert.That(bus.ReadPort(0xFFFF, 2), Is.EqualTo(0xFF5Au));
    }

    [Test]
    public void OverlappingPortRegistrationNamesBothDevices()
    {
        var bus = new DeviceBus();
        bus.RegisterPorts(0x3F8, 8, new FakePortDevice("uart"));

        var ex = Assert.Throws<OverlappingDeviceException>(() => bus.RegisterPorts(0x3FC, 2, new FakePortDevice("intruder")));

        Assert.That(ex!.Message, Does.Contain("'intruder'").And.Contain("'uart'").And.Contain("0x03FC").And.Contain("0x03F8"));
        Assert.That(ex.Device, Is.EqualTo("intruder"));
        Assert.That(ex.ExistingDevice, Is.EqualTo("uart"));
    }

    [Test]
    public void AdjacentPortRangesDoNotOverlap()
    {
        var bus = new DeviceBus();
        bus.RegisterPorts(0x10, 2, new FakePortDevice("a"));

        Assert.DoesNotThrow(() => bus.RegisterPorts(0x12, 2, new FakePortDevice("b")));
        Assert.DoesNotThrow(() => bus.RegisterPorts(0x0E, 2, new FakePortDevice("c")));
    }

    [TestCase((ushort)0x10, 0)]
    [TestCase((ushort)0xFFFF, 2)]
    public void InvalidPortRangesAreRejected(ushort first, int count)
    {
        var bus = new DeviceBus();

        var ex = Assert.Throws<InvalidDeviceRangeException>(() => bus.RegisterPorts(first, count, new FakePortDevice("bad")));

        Assert.That(ex!.Message, Does.Contain("'bad'").And.Contain($"{count} ports"));
    }

    [Test]
    public void OneDeviceMayOwnSeveralRanges()
    {
        var bus = new DeviceBus();
        var dev = new FakePortDevice("pic", 0x5);
        bus.RegisterPorts(0x20, 2, dev);
        bus.RegisterPorts(0xA0, 2, dev);

        Assert.That(bus.ReadPort(0xA1, 1), Is.EqualTo(5u));
        Assert.That(bus.PortOwner(0x21), Is.SameAs(dev));
        Assert.That(bus.PortOwner(0x22), Is.Null);
        Assert.That(bus.Devices, Is.EqualTo(new[] { dev }));
    }

    [Test]
    public void CountersArePerDevice()
    {
        var bus = new DeviceBus();
        var a = new FakePortDevice("a");
        var b = new FakePortDevice("b");
        var m = new FakeMmioDevice("m", 16);
        bus.RegisterPorts(0x10, 1, a);
        bus.RegisterPorts(0x20, 1, b);
        bus.RegisterMmio(0x1000, 16, m);

        bus.ReadPort(0x10, 1);
        bus.ReadPort(0x10, 1);
        bus.WritePort(0x20, 1, 0);
        Span<byte> buf = stackalloc byte[4];
        bus.ReadMmio(0x1000, buf);
        bus.WriteMmio(0x1004, buf);
        bus.WriteMmio(0x1008, buf);

        Assert.That(bus.CountersOf(a), Is.EqualTo(new DeviceCounters(2, 0, 0, 0)));
        Assert.That(bus.CountersOf(b), Is.EqualTo(new DeviceCounters(0, 1, 0, 0)));
        Assert.That(bus.CountersOf(m), Is.EqualTo(new DeviceCounters(0, 0, 1, 2)));
        Assert.That(bus.CountersOf(m).Total, Is.EqualTo(3));
    }

    [Test]
    public void CountersOfAnUnregisteredDeviceIsAnError()
    {
        var bus = new DeviceBus();

        var ex = Assert.Throws<ArgumentException>(() => bus.CountersOf(new FakePortDevice("stranger")));

        Assert.That(ex!.Message, Does.Contain("'stranger'").And.Contain("not registered"));
    }

    [Test]
    public void MmioAccessGoesToTheDeviceAtItsOffset()
    {
        var bus = new DeviceBus();
        var dev = new FakeMmioDevice("m", 0x100);
        bus.RegisterMmio(0xF000_0000, 0x100, dev);

        bus.WriteMmio(0xF000_0010, [1, 2, 3, 4]);
        var back = new byte[4];
        bus.ReadMmio(0xF000_0010, back);

        Assert.That(back, Is.EqualTo(new byte[] { 1, 2, 3, 4 }));
        Assert.That(dev.Accesses, Is.EqualTo(new[] { ("write", 0x10UL, 4), ("read", 0x10UL, 4) }));
        Assert.That(bus.IsMmio(0xF000_00FF), Is.True);
        Assert.That(bus.IsMmio(0xF000_0100), Is.False);
    }

    [Test]
    public void UnknownMmioReadsFFAndIsLoggedOncePerPage()
    {
        var logger = new RecordingLogger();
        var bus = new DeviceBus(logger);
        var data = new byte[8];

        bus.ReadMmio(0xC000_0000, data);
        bus.ReadMmio(0xC000_0008, data);
        bus.WriteMmio(0xC000_1000, data);

        Assert.That(data, Is.All.EqualTo(0xFF));
        Assert.That(logger.Messages.Count(), Is.EqualTo(2));
        Assert.That(logger.Messages.First(), Does.Contain("0xC0000000"));
        Assert.That(bus.UnknownCounters, Is.EqualTo(new DeviceCounters(0, 0, 2, 1)));
    }

    [Test]
    public void MmioAccessStraddlingARegionEndIsSplit()
    {
        var bus = new DeviceBus();
        var dev = new FakeMmioDevice("m", 0x10);
        dev.Memory[0xE] = 0xAA;
        dev.Memory[0xF] = 0xBB;
        bus.RegisterMmio(0x1000, 0x10, dev);
        var data = new byte[4];

        bus.ReadMmio(0x100E, data);

        Assert.That(data, Is.EqualTo(new byte[] { 0xAA, 0xBB, 0xFF, 0xFF }));
        Assert.That(dev.Accesses, Is.EqualTo(new[] { ("read", 0xEUL, 2) }));
    }

    [Test]
    public void OverlappingMmioRegistrationNamesBothDevices()
    {
        var bus = new DeviceBus();
        bus.RegisterMmio(LocalApic.BaseAddress, LocalApic.Size, new LocalApic(0, bootstrap: true));

        var ex = Assert.Throws<OverlappingDeviceException>(() => bus.RegisterMmio(0xFEE00800, 0x1000, new FakeMmioDevice("hpet", 1)));

        Assert.That(ex!.Message, Does.Contain("'hpet'").And.Contain("'lapic0'").And.Contain("MMIO").And.Contain("0xFEE00000"));
    }

    [Test]
    public void MmioRangeMayEndAtTheTopOfTheAddressSpace()
    {
        var bus = new DeviceBus();
        var dev = new FakeMmioDevice("top", 0x10);
        bus.RegisterMmio(ulong.MaxValue - 0xF, 0x10, dev);

        Assert.That(bus.IsMmio(ulong.MaxValue), Is.True);
        Assert.Throws<OverlappingDeviceException>(() => bus.RegisterMmio(ulong.MaxValue, 1, new FakeMmioDevice("x", 1)));
    }

    [Test]
    public void InvalidMmioRangesAreRejected()
    {
        var bus = new DeviceBus();

        var empty = Assert.Throws<InvalidDeviceRangeException>(() => bus.RegisterMmio(0x1000, 0, new FakeMmioDevice("e", 1)));
        var wraps = Assert.Throws<InvalidDeviceRangeException>(() => bus.RegisterMmio(ulong.MaxValue, 2, new FakeMmioDevice("w", 1)));

        Assert.That(empty!.Message, Does.Contain("'e'").And.Contain("length 0x0"));
        Assert.That(wraps!.Message, Does.Contain("'w'").And.Contain("2^64"));
    }

    [Test]
    public void EmptyMmioAccessIsRejected()
    {
        var bus = new DeviceBus();

        var ex = Assert.Throws<InvalidAccessSizeException>(() => bus.ReadMmio(0x1000, []));

        Assert.That(ex!.Message, Does.Contain("access size 0"));
    }

    [Test]
    public void ConcurrentDispatchCountsEveryAccessAndLogsAnUnknownPortOnce()
    {
        var logger = new RecordingLogger();
        var bus = new DeviceBus(logger);
        var console = new GuestConsole();
        new DebugConsole(console).Attach(bus);

        Parallel.For(0, 8, _ =>
        {
            for (var i = 0; i < 1000; i++)
            {
                bus.WritePort(0xE9, 1, (byte)'x');
                bus.ReadPort(0x80, 1);
            }
        });

        Assert.That(bus.CountersOf(bus.PortOwner(0xE9)!).PortWrites, Is.EqualTo(8000));
        Assert.That(console.BytesWritten, Is.EqualTo(8000));
        Assert.That(bus.UnknownCounters.PortReads, Is.EqualTo(8000));
        Assert.That(logger.Messages.Count(), Is.EqualTo(1));
    }
}
