using Hypervisor.Vmm.Devices;

namespace Hypervisor.Vmm.Tests.Devices;

public sealed class CmosRtcTests
{
    private const long Second = 1_000_000_000;
    private static readonly DateTime Start = new(2024, 2, 29, 23, 59, 58, DateTimeKind.Utc); // a Thursday

    private long _now;
    private PlatformTimers _timers = null!;
    private DeviceBus _bus = null!;
    private CmosRtc _rtc = null!;
    private List<bool> _line = null!;

    [SetUp]
    public void SetUp()
    {
        _now = 5 * Second;
        _timers = new PlatformTimers { Clock = () => _now };
        _bus = new DeviceBus();
        _rtc = new CmosRtc(_timers, Start);
        _line = [];
        _rtc.InterruptLine = _line.Add;
        _rtc.Attach(_bus);
    }

    [Test]
    public void ResetStateIsBcd24HourWithValidRam()
    {
        Assert.That(Read(0x0A), Is.EqualTo(0x26), "32.768 kHz divider, 1024 Hz rate");
        Assert.That(Read(0x0B), Is.EqualTo(0x02), "24-hour, BCD, no interrupts");
        Assert.That(Read(0x0D), Is.EqualTo(0x80), "VRT: the RAM and time are valid");
        Assert.That(Read(0x0C), Is.Zero);
    }

    [Test]
    public void TimeRegistersReadTheStartTimeInBcd()
    {
        Assert.That(ReadTime(), Is.EqualTo(new[] { 0x58, 0x59, 0x23, 5, 0x29, 0x02, 0x24, 0x20 }), "sec, min, hour, weekday (Thursday = 5), date, month, year, century");
    }

    [Test]
    public void TimeAdvancesWithThePlatformClockThroughALeapDay()
    {
        _now += 2 * Second;

        Assert.That(ReadTime(), Is.EqualTo(new[] { 0x00, 0x00, 0x00, 6, 0x01, 0x03, 0x24, 0x20 }), "Friday 1 March 2024, midnight");
        Assert.That(_rtc.Now, Is.EqualTo(Start.AddSeconds(2)));
    }

    [Test]
    public void ReplacingThePlatformClockKeepsTheTimeContinuous()
    {
        // The devices are built on the host's clock; the boot vCPU then takes the clock over, starting near 0.
        _now += Second;
        long vcpu = 0;
        _timers.Clock = () => vcpu;

        Assert.That(_rtc.Now, Is.EqualTo(Start.AddSeconds(1)), "not Start - 4 s (the old clock's reading taken as an offset)");
        vcpu += Second;
        Assert.That(_rtc.Now, Is.EqualTo(Start.AddSeconds(2)), "and it runs on the new clock");
    }

    [Test]
    public void BinaryAnd12HourModes()
    {
        Write(0x0B, 0x04); // binary, 12-hour

        Assert.That(Read(0), Is.EqualTo(58));
        Assert.That(Read(4), Is.EqualTo(0x80 | 11), "23:xx is 11 PM");
        Assert.That(Read(9), Is.EqualTo(24));
        Assert.That(Read(0x32), Is.EqualTo(20));

        _now += 2 * Second;
        Assert.That(Read(4), Is.EqualTo(12), "midnight is 12 AM");
    }

    [Test]
    public void UipIsSetForThe244MicrosecondsBeforeEachUpdate()
    {
        var boundary = 5 * Second + Second; // the clock started on a whole second

        _now = boundary - CmosRtc.UpdateInProgressNs - 1;
        Assert.That(Read(0x0A) & 0x80, Is.Zero);
        _now = boundary - CmosRtc.UpdateInProgressNs;
        Assert.That(Read(0x0A) & 0x80, Is.EqualTo(0x80));
        Assert.That(Read(0), Is.EqualTo(0x58), "the update has not happened yet");
        _now = boundary;
        Assert.That(Read(0x0A) & 0x80, Is.Zero);
        Assert.That(Read(0), Is.EqualTo(0x59));
    }

    [Test]
    public void SetBitFreezesTheClockForWritingAndItRunsOnFromClearing()
    {
        Write(0x0B, 0x82);
        _now += 10 * Second;
        Assert.That(Read(0), Is.EqualTo(0x58), "no updates while SET");
        Assert.That(Read(0x0A) & 0x80, Is.Zero, "no update in progress while SET");

        Write(0, 0x30);
        Write(2, 0x15);
        Write(4, 0x09);
        Write(7, 0x31);
        Write(8, 0x12);
        Write(9, 0x99);
        Write(0x32, 0x19);
        _now += 3 * Second;
        Write(0x0B, 0x02);
        _now += Second + 1;

        Assert.That(_rtc.Now, Is.EqualTo(new DateTime(1999, 12, 31, 9, 15, 31, DateTimeKind.Utc)));
        Assert.That(Read(0), Is.EqualTo(0x31));
    }

    [Test]
    public void SettingSetClearsUie()
    {
        Write(0x0B, 0x12);
        Write(0x0B, 0x92);

        Assert.That(Read(0x0B), Is.EqualTo(0x82));
    }

    [Test]
    public void FlagsAreSetWithoutEnablesAndClearedOnRead()
    {
        _now += 2 * Second;

        var flags = Read(0x0C);
        Assert.That(flags, Is.EqualTo(0x40 | 0x20 | 0x10), "PF, UF, and AF (the alarm registers' 00:00:00 was passed at midnight); no IRQF: nothing enabled");
        Assert.That(Read(0x0C), Is.Zero, "cleared by the read");
        Assert.That(_line, Is.Empty);
    }

    [Test]
    public void PeriodicInterruptAtTheProgrammedRate()
    {
        Write(0x0A, 0x2F); // rate 15: 2 Hz
        Read(0x0C);
        Write(0x0B, 0x42); // PIE

        var deadline = _timers.Service(_now);
        Assert.That(deadline, Is.EqualTo(5 * Second + (Second / 2)), "the next 500 ms boundary of the 32.768 kHz time base");
        _now = deadline;
        Assert.That(_timers.Service(_now), Is.EqualTo(long.MaxValue), "nothing further until register C is read");
        Assert.That(_line, Is.EqualTo(new[] { true }));

        Assert.That(Read(0x0C), Is.EqualTo(0x80 | 0x40), "IRQF and PF");
        Assert.That(_line, Is.EqualTo(new[] { true, false }), "reading C lowers IRQ8");
        Assert.That(_timers.Service(_now), Is.EqualTo(6 * Second));
    }

    [Test]
    public void UpdateEndedInterruptEachSecond()
    {
        Write(0x0B, 0x12); // UIE
        _now += Second / 10;
        Assert.That(_timers.Service(_now), Is.EqualTo(6 * Second));
        _now = 6 * Second;
        _timers.Service(_now);

        Assert.That(_line, Is.EqualTo(new[] { true }));
        Assert.That(Read(0x0C) & 0x90, Is.EqualTo(0x90));
    }

    [Test]
    public void AlarmInterruptWhenTheTimeMatches()
    {
        Write(1, 0x01); // alarm 00:00:01
        Write(3, 0x00);
        Write(5, 0x00);
        Write(0x0B, 0x22); // AIE
        _now += 2 * Second;
        _timers.Service(_now);
        Assert.That(_line, Is.Empty, "00:00:00 does not match");

        _now += Second;
        _timers.Service(_now);
        Assert.That(_line, Is.EqualTo(new[] { true }));
        Assert.That(Read(0x0C) & 0xA0, Is.EqualTo(0xA0), "IRQF and AF");
    }

    [Test]
    public void DontCareAlarmMatchesEverySecond()
    {
        Write(1, 0xFF);
        Write(3, 0xFF);
        Write(5, 0xFF);
        _now += Second;

        Assert.That(Read(0x0C) & 0x20, Is.EqualTo(0x20));
    }

    [Test]
    public void CmosRamIsReadWriteAndStatusRegistersAreReadOnly()
    {
        Write(0x0F, 0x0A);
        Write(0x7F, 0x5A);
        Write(0x0D, 0x00);

        Assert.That(Read(0x0F), Is.EqualTo(0x0A));
        Assert.That(Read(0x7F), Is.EqualTo(0x5A));
        Assert.That(Read(0x0D), Is.EqualTo(0x80));
    }

    [Test]
    public void IndexBit7IsTheNmiMask()
    {
        _bus.WritePort(0x70, 1, 0x8F);
        Assert.That(_rtc.NmiMasked, Is.True);
        Assert.That(_bus.ReadPort(0x71, 1), Is.Zero, "register 0x0F, not 0x8F");

        _bus.WritePort(0x70, 1, 0x0F);
        Assert.That(_rtc.NmiMasked, Is.False);
    }

    [Test]
    public void LinuxGetTimeReadsACoherentTimeAcrossAnUpdate()
    {
        // The algorithm of Linux's mc146818_get_time: read the seconds, retry after 100 µs while UIP, read the rest,
        // then retry if UIP is set or the seconds changed. Start it 100 ns into the UIP window, each access costing 1 µs.
        _now = 6 * Second - CmosRtc.UpdateInProgressNs + 100;
        int ReadLinux(int index)
        {
            _now += 1_000;
            return Read(index);
        }

        int[] time;
        var retries = 0;
        while (true)
        {
            Assert.That(ReadLinux(0x0D) & 0x40, Is.Zero, "RTC_VALID bit 6 must be 0");
            var seconds = ReadLinux(0);
            if ((ReadLinux(0x0A) & 0x80) != 0)
            {
                retries++;
                _now += 100_000;
                continue;
            }

            time = [seconds, ReadLinux(2), ReadLinux(4), ReadLinux(7), ReadLinux(8), ReadLinux(9), ReadLinux(0x32)];
            var uip = ReadLinux(0x0A) & 0x80;
            if (uip != 0 || ReadLinux(0) != seconds)
            {
                retries++;
                continue;
            }

            break;
        }

        Assert.That(retries, Is.InRange(1, 3), "the update in progress was waited out");
        Assert.That(time, Is.EqualTo(new[] { 0x59, 0x59, 0x23, 0x29, 0x02, 0x24, 0x20 }));
    }

    private int Read(int index)
    {
        _bus.WritePort(0x70, 1, (uint)index);
        return (int)_bus.ReadPort(0x71, 1);
    }

    private void Write(int index, int value)
    {
        _bus.WritePort(0x70, 1, (uint)index);
        _bus.WritePort(0x71, 1, (uint)value);
    }

    private int[] ReadTime() => [Read(0), Read(2), Read(4), Read(6), Read(7), Read(8), Read(9), Read(0x32)];
}
