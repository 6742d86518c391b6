using Hypervisor.Vmm.Devices;

namespace Hypervisor.Vmm.Tests.Devices;

/// <summary>The ACPI PM timer: 3.579545 MHz of the clock it is given, 32 bits, read-only, byte-addressable.</summary>
public sealed class AcpiPmTimerTests
{
    [TestCase(0L, 0u)]
    [TestCase(1_000_000_000L, 3_579_545u)]
    [TestCase(279L, 0u)]
    [TestCase(280L, 1u)]
    public void CountsAt3579545HzOfTheClock(long ns, uint ticks)
    {
        var bus = new DeviceBus();
        new AcpiPmTimer(() => ns).Attach(bus);

        Assert.That(bus.ReadPort(0x608, 4), Is.EqualTo(ticks));
    }

    [Test]
    public void WrapsAt32Bits()
    {
        // 2^32 ticks take 2^32 / 3579545 s; one second later the counter reads one second's worth.
        var wrap = (long)(Math.Ceiling((double)(1L << 32) * 1_000_000_000 / 3_579_545));
        var bus = new DeviceBus();
        var now = wrap + 1_000_000_000;
        new AcpiPmTimer(() => now).Attach(bus);

        Assert.That(bus.ReadPort(0x608, 4), Is.InRange(3_579_544u, 3_579_546u));
    }

    [Test]
    public void BytesAndWordsReadTheCounterLittleEndianAndWritesAreIgnored()
    {
        var bus = new DeviceBus();
        var timer = new AcpiPmTimer(() => 1_000_000_000L * 1000);
        timer.Attach(bus);
        var value = timer.Value;

        bus.WritePort(0x608, 4, 0);

        Assert.Multiple(() =>
        {
            Assert.That(bus.ReadPort(0x608, 4), Is.EqualTo(value));
            Assert.That(bus.ReadPort(0x609, 1), Is.EqualTo((value >> 8) & 0xFF));
            Assert.That(bus.ReadPort(0x60A, 2), Is.EqualTo(value >> 16));
        });
    }

    [Test]
    public void DefaultClockIsTheHostsMonotonicTime()
    {
        var timer = new AcpiPmTimer();
        var first = timer.Value;
        Thread.Sleep(20);
        var second = timer.Value;

        Assert.That(second - first, Is.InRange(3_579_545u / 50, 3_579_545u * 2), "about 20 ms of ticks (generous for a loaded host)");
    }
}
