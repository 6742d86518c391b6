using Hypervisor.Vmm.Devices;

namespace Hypervisor.Vmm.Tests.Devices;

public sealed class Pit8254Tests
{
    private long _now;
    private PlatformTimers _timers = null!;
    private DeviceBus _bus = null!;
    private Pit8254 _pit = null!;
    private List<bool> _line = null!;

    [SetUp]
    public void SetUp()
    {
        _now = 1_000_000;
        _timers = new PlatformTimers { Clock = () => _now };
        _bus = new DeviceBus();
        _pit = new Pit8254(_timers);
        _line = [];
        _pit.InterruptLine = _line.Add;
        _pit.Attach(_bus);
    }

    [Test]
    public void TickConversionUsesTheInputClock()
    {
        Assert.That(Pit8254.NanosecondsToTicks(1_000_000_000), Is.EqualTo(1_193_182));
        Assert.That(Pit8254.NanosecondsToTicks(838), Is.EqualTo(0), "one tick is 838.1 ns");
        Assert.That(Pit8254.NanosecondsToTicks(839), Is.EqualTo(1));
        Assert.That(Pit8254.TicksToNanoseconds(1), Is.EqualTo(839));
        Assert.That(Pit8254.TicksToNanoseconds(1_193_182), Is.EqualTo(1_000_000_000));
    }

    [Test]
    public void Mode0CountsDownFromTheInitialCount()
    {
        Out(0x43, 0x30); // counter 0, LSB then MSB, mode 0, binary
        Out(0x40, 0x00);
        Out(0x40, 0x10);

        Assert.That(LatchedCount(0), Is.EqualTo(0x1000));
        Advance(1_000_000); // 1 ms = 1193 ticks
        Assert.That(LatchedCount(0), Is.EqualTo(0x1000 - 1193));
    }

    [Test]
    public void Mode0OutputRisesAtTerminalCountAndCountWrapsOn()
    {
        Out(0x43, 0x30);
        Out(0x40, 100);
        Out(0x40, 0);
        Assert.That(Status(0) & 0x80, Is.Zero, "OUT is low while counting");

        AdvanceTicks(99);
        Assert.That(Status(0) & 0x80, Is.Zero);
        AdvanceTicks(1);
        Assert.That(Status(0) & 0x80, Is.EqualTo(0x80), "OUT goes high when the count reaches 0");
        AdvanceTicks(5);
        Assert.That(LatchedCount(0), Is.EqualTo(0x10000 - 5), "the counter keeps decrementing after terminal count");
        Assert.That(Status(0) & 0x80, Is.EqualTo(0x80), "and OUT stays high");
    }

    [Test]
    public void StatusByteReportsProgrammingAndNullCount()
    {
        Out(0x43, 0b10_11_010_1); // counter 2, LSB then MSB, mode 2, BCD

        var afterControl = Status(2);
        Assert.That(afterControl & 0x3F, Is.EqualTo(0b11_010_1), "RW, mode and BCD as written");
        Assert.That(afterControl & 0x40, Is.EqualTo(0x40), "NULL COUNT after a control word");

        Out(0x42, 0x34);
        Assert.That(Status(2) & 0x40, Is.EqualTo(0x40), "half a count written: still null");
        Out(0x42, 0x12);
        AdvanceTicks(1);
        Assert.That(Status(2) & 0x40, Is.Zero, "the count reached the counting element on the next clock");
    }

    [Test]
    public void CounterLatchFreezesTheReadValueUntilBothBytesAreRead()
    {
        Out(0x43, 0x34); // counter 0, mode 2
        Out(0x40, 0x00);
        Out(0x40, 0x80); // 0x8000
        AdvanceTicks(0x100);
        Out(0x43, 0x00); // latch counter 0
        AdvanceTicks(0x1000);

        var lsb = In(0x40);
        AdvanceTicks(0x1000);
        var msb = In(0x40);
        Assert.That(lsb | (msb << 8), Is.EqualTo(0x8000 - 0x100));

        Out(0x43, 0x00);
        Out(0x43, 0x00); // a second latch before the first is read is ignored
        AdvanceTicks(7);
        Assert.That(In(0x40) | (In(0x40) << 8), Is.EqualTo(0x8000 - 0x2100));
    }

    [Test]
    public void ReadBackLatchesStatusBeforeCount()
    {
        Out(0x43, 0xB0); // counter 2, mode 0
        Out(0x42, 0x00);
        Out(0x42, 0x20);
        AdvanceTicks(0x10);

        Out(0x43, 0b1100_1000); // read-back: count and status of counter 2
        AdvanceTicks(0x100);

        Assert.That(In(0x42), Is.EqualTo(0b00_11_000_0), "status first: OUT low, not null, RW 3, mode 0 (gate low: not counting)");
        Assert.That(In(0x42) | (In(0x42) << 8), Is.EqualTo(0x2000), "the gate of counter 2 is low, so it has not counted");
    }

    [Test]
    public void ReadBackOfStatusOnlyLeavesTheLiveCountReadable()
    {
        Out(0x43, 0x30);
        Out(0x40, 0x00);
        Out(0x40, 0x01); // 256
        AdvanceTicks(256);

        Out(0x43, 0b1110_0010); // read-back, status only, counter 0
        Assert.That(In(0x40) & 0x80, Is.EqualTo(0x80), "OUT high at terminal count");
        AdvanceTicks(1);
        Assert.That(In(0x40) | (In(0x40) << 8), Is.EqualTo(0xFFFF), "then live LSB/MSB");
    }

    [Test]
    public void LsbOnlyAndMsbOnlyAccess()
    {
        Out(0x43, 0x10); // counter 0, LSB only, mode 0
        Out(0x40, 200);
        AdvanceTicks(50);
        Assert.That(In(0x40), Is.EqualTo(150));

        Out(0x43, 0x20); // MSB only
        Out(0x40, 0x02); // 0x200
        AdvanceTicks(0x100);
        Assert.That(In(0x40), Is.EqualTo(0x01));
    }

    [Test]
    public void Mode2PulsesIrq0OncePerPeriod()
    {
        Out(0x43, 0x34);
        Out(0x40, 1193 & 0xFF); // ~1 kHz
        Out(0x40, 1193 >> 8);

        var pulses = 0;
        for (var step = 0; step < 10_000; step++)
        {
            Advance(1_000); // 10 ms in 1 µs steps
            _timers.Service(_now);
        }

        pulses = _line.Count(level => level);
        Assert.That(pulses, Is.EqualTo(11931 / 1193), "one rising edge every 1193 ticks");
        Assert.That(_line, Has.Count.EqualTo(2 * pulses), "each is a raise then a lower");
        Assert.That(_line.Where((_, i) => i % 2 == 1), Is.All.False);
    }

    [Test]
    public void Mode2OutputIsLowForOneClockBeforeReload()
    {
        Out(0x43, 0x34);
        Out(0x40, 10);
        Out(0x40, 0);

        AdvanceTicks(8);
        Assert.That(Status(0) & 0x80, Is.EqualTo(0x80), "count 2: OUT high");
        AdvanceTicks(1);
        Assert.That(Status(0) & 0x80, Is.Zero, "count 1: OUT low");
        Assert.That(LatchedCount(0), Is.EqualTo(1));
        AdvanceTicks(1);
        Assert.That(Status(0) & 0x80, Is.EqualTo(0x80), "reloaded: OUT high");
        Assert.That(LatchedCount(0), Is.EqualTo(10));
    }

    [Test]
    public void NextDeadlineIsTheNextRisingEdgeAndAHaltCanSkipToIt()
    {
        Out(0x43, 0x34);
        Out(0x40, 100);
        Out(0x40, 0);
        var start = _now;

        var deadline = _timers.Service(_now);
        Assert.That(deadline, Is.EqualTo(start + Pit8254.TicksToNanoseconds(100)));

        _now = deadline - 1;
        Assert.That(_timers.Service(_now), Is.EqualTo(deadline), "not yet due");
        Assert.That(_line, Is.Empty);

        _now = deadline;
        var next = _timers.Service(_now);
        Assert.That(_line, Is.EqualTo(new[] { true, false }));
        Assert.That(next, Is.EqualTo(start + Pit8254.TicksToNanoseconds(200)));
        Assert.That(_timers.NextWake(_now), Is.EqualTo(next));
    }

    [Test]
    public void MissedPeriodsCoalesceIntoOnePulse()
    {
        Out(0x43, 0x34);
        Out(0x40, 100);
        Out(0x40, 0);

        AdvanceTicks(1050);
        var next = _timers.Service(_now);

        Assert.That(_line.Count(level => level), Is.EqualTo(1));
        Assert.That(Pit8254.NanosecondsToTicks(next - 1_000_000), Is.EqualTo(1100), "the next edge after the gap");
    }

    [Test]
    public void ReprogrammingCounter0KicksTheBootVcpu()
    {
        var kicks = 0;
        _timers.Kick = () => kicks++;
        var generation = _timers.Generation;

        Out(0x43, 0x34);
        Out(0x40, 100);
        Assert.That(kicks, Is.Zero, "half a count changes nothing");
        Out(0x40, 0);

        Assert.That(kicks, Is.EqualTo(1));
        Assert.That(_timers.Generation, Is.GreaterThan(generation));
    }

    [Test]
    public void Mode4StrobesOnceAfterTheCount()
    {
        Out(0x43, 0x38); // counter 0, mode 4
        Out(0x40, 50);
        Out(0x40, 0);

        AdvanceTicks(49);
        Assert.That(Status(0) & 0x80, Is.EqualTo(0x80));
        AdvanceTicks(1);
        Assert.That(Status(0) & 0x80, Is.Zero, "low for the one clock at count 0");
        AdvanceTicks(1);
        Assert.That(Status(0) & 0x80, Is.EqualTo(0x80));
        _timers.Service(_now);
        Assert.That(_line.Count(level => level), Is.EqualTo(1));
        Assert.That(_timers.Service(_now), Is.EqualTo(long.MaxValue), "one-shot: nothing further armed");
    }

    [Test]
    public void Mode3IsASquareWave()
    {
        Out(0x43, 0x36); // counter 0, mode 3
        Out(0x40, 100);
        Out(0x40, 0);

        AdvanceTicks(49);
        Assert.That(Status(0) & 0x80, Is.EqualTo(0x80), "high for the first half");
        Assert.That(LatchedCount(0), Is.EqualTo(2), "the count falls by two per clock");
        AdvanceTicks(1);
        Assert.That(Status(0) & 0x80, Is.Zero, "low for the second half");
        AdvanceTicks(50);
        Assert.That(Status(0) & 0x80, Is.EqualTo(0x80));
    }

    [Test]
    public void Counter2GateIsPortBBit0AndItsOutIsBit5()
    {
        Out(0x43, 0xB0); // counter 2, mode 0
        Out(0x42, 100);
        Out(0x42, 0);
        AdvanceTicks(500);
        Assert.That(In(0x61) & 0x21, Is.Zero, "gate low: not counting, OUT low");

        Out(0x61, 0x01);
        AdvanceTicks(99);
        Assert.That(In(0x61) & 0x21, Is.EqualTo(0x01));
        AdvanceTicks(1);
        Assert.That(In(0x61) & 0x21, Is.EqualTo(0x21), "OUT2 high at terminal count");
    }

    [Test]
    public void GateLowSuspendsMode0Counting()
    {
        Out(0x61, 0x01);
        Out(0x43, 0xB0);
        Out(0x42, 0);
        Out(0x42, 1); // 256
        AdvanceTicks(100);
        Out(0x61, 0x00);
        AdvanceTicks(1000);
        Out(0x61, 0x01);
        AdvanceTicks(10);

        Assert.That(LatchedCount(2), Is.EqualTo(256 - 110));
    }

    [Test]
    public void Mode1IsTriggeredByTheGate()
    {
        Out(0x43, 0xB2); // counter 2, mode 1
        Out(0x42, 20);
        Out(0x42, 0);
        AdvanceTicks(100);
        Assert.That(In(0x61) & 0x20, Is.EqualTo(0x20), "OUT high until triggered");

        Out(0x61, 0x01);
        AdvanceTicks(19);
        Assert.That(In(0x61) & 0x20, Is.Zero, "low during the one-shot");
        AdvanceTicks(1);
        Assert.That(In(0x61) & 0x20, Is.EqualTo(0x20));
    }

    [Test]
    public void PortBStoresSpeakerBitsAndTogglesRefresh()
    {
        Out(0x61, 0x03);
        Assert.That(In(0x61) & 0x0F, Is.EqualTo(0x03));

        _now = 15_085 * 100;
        var before = In(0x61) & 0x10;
        Advance(15_084);
        Assert.That(In(0x61) & 0x10, Is.EqualTo(before), "unchanged within 15.085 µs");
        Advance(1);
        Assert.That(In(0x61) & 0x10, Is.Not.EqualTo(before), "flipped after 15.085 µs");
    }

    [Test]
    public void ControlPortReadsAllOnes()
    {
        Assert.That(In(0x43), Is.EqualTo(0xFF));
    }

    [Test]
    public void LinuxQuickPitCalibrationMeasuresTheOneGigahertzClock()
    {
        // The algorithm of Linux's quick_pit_calibrate (arch/x86/kernel/tsc.c), with the TSC equal to virtual time and
        // every port access costing 3 ns (instructions) of it.
        long Tsc() => _now;
        byte Inb(ushort port)
        {
            Advance(3);
            return (byte)_bus.ReadPort(port, 1);
        }

        void Outb(byte value, ushort port)
        {
            Advance(3);
            _bus.WritePort(port, 1, value);
        }

        bool VerifyMsb(byte value)
        {
            Inb(0x42);
            return Inb(0x42) == value;
        }

        bool ExpectMsb(byte value, out long tsc, out long delta)
        {
            long t = 0, previous = 0;
            var count = 0;
            for (; count < 50_000; count++)
            {
                if (!VerifyMsb(value))
                {
                    break;
                }

                previous = t;
                t = Tsc();
            }

            delta = Tsc() - previous;
            tsc = t;
            return count > 5;
        }

        Outb((byte)((Inb(0x61) & ~0x02) | 0x01), 0x61);
        Outb(0xB0, 0x43);
        Outb(0xFF, 0x42);
        Outb(0xFF, 0x42);
        VerifyMsb(0);
        long khz = 0;
        if (ExpectMsb(0xFF, out var start, out var d1))
        {
            for (var i = 1; i <= 233; i++)
            {
                if (!ExpectMsb((byte)(0xFF - i), out var end, out var d2))
                {
                    break;
                }

                var delta = end - start;
                if (i == 1 && d1 + d2 >= (delta * 233) >> 11)
                {
                    break;
                }

                if (d1 + d2 >= delta >> 11)
                {
                    continue;
                }

                if (!VerifyMsb((byte)(0xFE - i)))
                {
                    break;
                }

                khz = delta * Pit8254.InputHz / (i * 256L * 1000);
                break;
            }
        }

        Assert.That(khz, Is.EqualTo(1_000_000).Within(500), "≈1 GHz within Linux's 500 ppm");
    }

    private void Out(ushort port, int value) => _bus.WritePort(port, 1, (uint)value);

    private int In(ushort port) => (int)_bus.ReadPort(port, 1);

    private void Advance(long nanoseconds) => _now += nanoseconds;

    // Moves the clock to exactly `ticks` more input-clock ticks since the clock was last on a tick boundary of the SetUp start.
    private void AdvanceTicks(long ticks)
    {
        var elapsed = Pit8254.NanosecondsToTicks(_now - 1_000_000);
        _now = 1_000_000 + Pit8254.TicksToNanoseconds(elapsed + ticks);
    }

    private int LatchedCount(int channel)
    {
        Out(0x43, channel << 6);
        var port = (ushort)(0x40 + channel);
        return In(port) | (In(port) << 8);
    }

    private int Status(int channel)
    {
        Out(0x43, 0xE0 | (2 << channel));
        return In((ushort)(0x40 + channel));
    }
}
