namespace Hypervisor.Vmm.Devices;

/// <summary>
/// The MC146818 real-time clock and its 128 bytes of CMOS RAM at ports 0x70 (index; bit 7 is the NMI mask, stored
/// and exposed as <see cref="NmiMasked"/>) and 0x71 (data). The time starts at the host's wall clock (UTC, as QEMU's
/// default <c>-rtc base=utc</c>) when the device is created and advances with the platform clock.
/// </summary>
/// <remarks>
/// <para>Registers 0–9 (seconds, alarm seconds, minutes, alarm minutes, hours, alarm hours, day of week, date, month,
/// year) and 0x32 (century) are BCD or binary as register B's DM bit says, the hours 12-hour (bit 7 = PM) or 24-hour
/// as its 24/12 bit says. The day of week (1 = Sunday) is derived from the date while the clock runs; a written one is
/// only held while SET is on. Register A: UIP (bit 7, read-only) is set in the 244 µs before each second's update; the
/// divider and rate bits are stored, and the rate selects the periodic interrupt (the clock itself always runs on the
/// 32.768 kHz time base). Register B: SET stops the updates (and clears UIE) so the guest can write the time, which runs
/// on from the moment SET is cleared; PIE, AIE, UIE enable the periodic, alarm and update-ended interrupts. Register C:
/// IRQF, PF, AF, UF, cleared on read (the flags are set whether or not enabled). Register D: VRT = 1. The rest is RAM.
/// A written date the calendar cannot hold (month 13, 31 February) is clamped to the nearest valid one when the clock
/// resumes.</para>
/// <para>IRQ8 (<see cref="InterruptLine"/>, I/O APIC pin 8) is asserted while IRQF is set and lowered by reading register
/// C. The device is one of the platform's timers: its deadline is the next periodic, update or alarm event that is
/// enabled.</para>
/// <para>Thread-safe. Lock order: the device's lock is never held while <see cref="InterruptLine"/> or the timers' kick runs.</para>
/// </remarks>
public sealed class CmosRtc : IPortDevice, IPlatformTimer
{
    /// <summary>The index port.</summary>
    public const ushort IndexPort = 0x70;

    /// <summary>The data port.</summary>
    public const ushort DataPort = 0x71;

    /// <summary>The I/O APIC pin of IRQ8 on a PC.</summary>
    public const int IoApicPin = 8;

    /// <summary>Register A.</summary>
    public const int RegisterA = 0x0A;

    /// <summary>Register B.</summary>
    public const int RegisterB = 0x0B;

    /// <summary>Register C.</summary>
    public const int RegisterC = 0x0C;

    /// <summary>Register D.</summary>
    public const int RegisterD = 0x0D;

    /// <summary>The century register (as QEMU and the ACPI FADT's CENTURY field name it).</summary>
    public const int CenturyRegister = 0x32;

    /// <summary>How long before each second's update UIP is set, in nanoseconds.</summary>
    public const long UpdateInProgressNs = 244_000;

    private const long Second = 1_000_000_000;
    private const int Uip = 0x80;
    private const int Set = 0x80;
    private const int Pie = 0x40;
    private const int Aie = 0x20;
    private const int Uie = 0x10;
    private const int Binary = 0x04;
    private const int Hours24 = 0x02;
    private const int Irqf = 0x80;
    private const int Pf = 0x40;
    private const int Af = 0x20;
    private const int Uf = 0x10;

    private readonly Lock _lock = new();
    private readonly PlatformTimers _timers;
    private readonly byte[] _ram = new byte[128];

    // While SET is on, the time registers' values (seconds, minutes, hours 0–23, day of week, date, month, year, century).
    private readonly int[] _held = new int[8];
    private DateTime _base;
    private Func<long> _anchorClock;
    private long _baseNs;
    private long _flagsAt;
    private int _flags;
    private bool _asserted;
    private byte _index;

    /// <summary>Creates the RTC on <paramref name="timers"/> (and registers it there).</summary>
    /// <param name="timers">The platform clock and timer set.</param>
    /// <param name="start">The time the clock shows now (UTC); null for the host's wall clock.</param>
    public CmosRtc(PlatformTimers timers, DateTime? start = null)
    {
        ArgumentNullException.ThrowIfNull(timers);
        _timers = timers;
        _anchorClock = timers.Clock;
        var now = timers.Now;
        var wall = start ?? DateTime.UtcNow;
        var fraction = wall.Ticks % TimeSpan.TicksPerSecond;
        _base = new DateTime(wall.Ticks - fraction, DateTimeKind.Utc);
        _baseNs = now - (fraction * 100);
        _flagsAt = now;
        _ram[RegisterA] = 0x26;
        _ram[RegisterB] = Hours24;
        _ram[RegisterD] = 0x80;
        timers.Register(this);
    }

    /// <inheritdoc />
    public string Name => "mc146818";

    /// <summary>IRQ8's line (level: asserted while IRQF is set); null for none.</summary>
    public Action<bool>? InterruptLine { get; set; }

    /// <summary>Whether IRQ8 can reach a CPU now (its I/O APIC pin unmasked); null means always.</summary>
    public Func<bool>? InterruptRouted { get; set; }

    /// <summary>Bit 7 of the last index written to port 0x70: non-maskable interrupts disabled.</summary>
    public bool NmiMasked { get; private set; }

    /// <summary>The time the clock shows now (the held registers' time while SET is on).</summary>
    public DateTime Now
    {
        get
        {
            var now = _timers.Now;
            lock (_lock)
            {
                Reanchor(now);
                return (_ram[RegisterB] & Set) != 0 ? HeldTime() : CurrentTime(now);
            }
        }
    }

    /// <inheritdoc />
    public bool CanInterrupt
    {
        get
        {
            lock (_lock)
            {
                if (InterruptLine is null || (_ram[RegisterB] & (Pie | Aie | Uie)) == 0)
                {
                    return false;
                }
            }

            return InterruptRouted?.Invoke() ?? true;
        }
    }

    /// <summary>Registers ports 0x70 and 0x71.</summary>
    /// <param name="bus">The bus.</param>
    public void Attach(DeviceBus bus)
    {
        ArgumentNullException.ThrowIfNull(bus);
        bus.RegisterPorts(IndexPort, 2, this);
    }

    /// <inheritdoc />
    public uint ReadPort(ushort port, int size)
    {
        var now = _timers.Now;
        uint value = 0;
        bool lowered = false;
        lock (_lock)
        {
            Reanchor(now);
            for (var i = 0; i < size; i++)
            {
                byte b;
                if (port + i == IndexPort)
                {
                    b = (byte)(_index | (NmiMasked ? 0x80 : 0));
                }
                else
                {
                    b = ReadRegisterLocked(_index, now, ref lowered);
                }

                value |= (uint)b << (8 * i);
            }
        }

        if (lowered)
        {
            InterruptLine?.Invoke(false);
            _timers.Changed();
        }

        return value;
    }

    /// <inheritdoc />
    public void WritePort(ushort port, int size, uint value)
    {
        var now = _timers.Now;
        var changed = false;
        bool raise;
        lock (_lock)
        {
            Reanchor(now);
            for (var i = 0; i < size; i++)
            {
                var b = (byte)(value >> (8 * i));
                if (port + i == IndexPort)
                {
                    _index = (byte)(b & 0x7F);
                    NmiMasked = (b & 0x80) != 0;
                }
                else
                {
                    changed |= WriteRegisterLocked(_index, b, now);
                }
            }

            raise = changed && UpdateLocked(now);
        }

        if (raise)
        {
            InterruptLine?.Invoke(true);
        }

        if (changed)
        {
            _timers.Changed();
        }
    }

    /// <inheritdoc />
    public long NextDeadline(long now)
    {
        lock (_lock)
        {
            Reanchor(now);
            var enables = _ram[RegisterB];
            if (_asserted || (enables & (Pie | Aie | Uie)) == 0)
            {
                return long.MaxValue;
            }

            // The first enabled event after the flags were last brought up to date: it may already be due.
            var next = long.MaxValue;
            var shift = PeriodicShift();
            if ((enables & Pie) != 0 && shift >= 0)
            {
                var k = ((Ticks32K(_flagsAt) >> shift) + 1) << shift;
                next = (long)(((Int128)k * Second + 32767) / 32768);
            }

            if ((enables & (Aie | Uie)) != 0 && (enables & Set) == 0)
            {
                next = Math.Min(next, _baseNs + ((FloorDiv(_flagsAt - _baseNs, Second) + 1) * Second));
            }

            return next;
        }
    }

    /// <inheritdoc />
    public void Fire(long now)
    {
        bool raise;
        lock (_lock)
        {
            Reanchor(now);
            raise = UpdateLocked(now);
        }

        if (raise)
        {
            InterruptLine?.Invoke(true);
        }
    }

    private static long FloorDiv(long a, long b) => a >= 0 ? a / b : -((-a + b - 1) / b);

    private static long Ticks32K(long ns) => (long)((Int128)ns * 32768 / Second);

    private static int Bcd(int value) => ((value / 10) << 4) | (value % 10);

    private static int FromBcd(int value) => ((value >> 4) * 10) + (value & 0xF);

    // The periodic rate's period as a power of two of 32.768 kHz ticks (rates 1 and 2 repeat 8 and 9), or -1 for none.
    private int PeriodicShift()
    {
        var rate = _ram[RegisterA] & 0xF;
        return rate switch
        {
            0 => -1,
            1 or 2 => rate + 6,
            _ => rate - 1,
        };
    }

    /// <summary>
    /// Keeps the time continuous when the platform clock is replaced (the interpreter's boot vCPU takes it over from the
    /// host's monotonic clock after the devices are built): moves every stored instant by the difference between the two
    /// clocks now. Called under the lock at each entry.
    /// </summary>
    private void Reanchor(long now)
    {
        var clock = _timers.Clock;
        if (ReferenceEquals(clock, _anchorClock))
        {
            return;
        }

        var shift = now - _anchorClock();
        _baseNs += shift;
        _flagsAt += shift;
        _anchorClock = clock;
    }

    private DateTime CurrentTime(long now) => _base.AddSeconds(FloorDiv(now - _baseNs, Second));

    private DateTime HeldTime()
    {
        var year = Math.Clamp((_held[7] * 100) + _held[6], 1, 9999);
        var month = Math.Clamp(_held[5], 1, 12);
        var day = Math.Clamp(_held[4], 1, DateTime.DaysInMonth(year, month));
        return new DateTime(year, month, day, Math.Clamp(_held[2], 0, 23), Math.Clamp(_held[1], 0, 59), Math.Clamp(_held[0], 0, 59), DateTimeKind.Utc);
    }

    private void Hold(DateTime time)
    {
        _held[0] = time.Second;
        _held[1] = time.Minute;
        _held[2] = time.Hour;
        _held[3] = (int)time.DayOfWeek + 1;
        _held[4] = time.Day;
        _held[5] = time.Month;
        _held[6] = time.Year % 100;
        _held[7] = time.Year / 100;
    }

    private static int FieldOf(int index) => index switch
    {
        0 => 0,
        2 => 1,
        4 => 2,
        6 => 3,
        7 => 4,
        8 => 5,
        9 => 6,
        CenturyRegister => 7,
        _ => -1,
    };

    private int Encode(int value) => (_ram[RegisterB] & Binary) != 0 ? value : Bcd(value);

    private int Decode(int value) => (_ram[RegisterB] & Binary) != 0 ? value : FromBcd(value);

    private int EncodeHour(int hour)
    {
        if ((_ram[RegisterB] & Hours24) != 0)
        {
            return Encode(hour);
        }

        var twelve = hour % 12 == 0 ? 12 : hour % 12;
        return Encode(twelve) | (hour >= 12 ? 0x80 : 0);
    }

    private int DecodeHour(int value)
    {
        if ((_ram[RegisterB] & Hours24) != 0)
        {
            return Decode(value);
        }

        return (Decode(value & 0x7F) % 12) + ((value & 0x80) != 0 ? 12 : 0);
    }

    private byte ReadRegisterLocked(int index, long now, ref bool lowered)
    {
        var running = (_ram[RegisterB] & Set) == 0;
        switch (index)
        {
            case RegisterA:
                var uip = running && now - _baseNs - (FloorDiv(now - _baseNs, Second) * Second) >= Second - UpdateInProgressNs;
                return (byte)((_ram[RegisterA] & 0x7F) | (uip ? Uip : 0));
            case RegisterC:
                UpdateLocked(now);
                var flags = (byte)_flags;
                _flags = 0;
                if (_asserted)
                {
                    _asserted = false;
                    lowered = true;
                }

                return flags;
            case RegisterD:
                return 0x80;
        }

        var field = FieldOf(index);
        if (field < 0)
        {
            return _ram[index];
        }

        if (running)
        {
            Hold(CurrentTime(now));
        }

        return (byte)(field == 2 ? EncodeHour(_held[2]) : Encode(_held[field]));
    }

    // Returns true when the write can change an interrupt or a deadline.
    private bool WriteRegisterLocked(int index, byte value, long now)
    {
        switch (index)
        {
            case RegisterA:
                UpdateLocked(now);
                _ram[RegisterA] = (byte)(value & 0x7F);
                return true;
            case RegisterB:
                UpdateLocked(now);
                var wasSet = (_ram[RegisterB] & Set) != 0;
                var setting = (value & Set) != 0;
                if (setting && !wasSet)
                {
                    Hold(CurrentTime(now));
                }
                else if (!setting && wasSet)
                {
                    Resume(now);
                }

                // Setting SET clears UIE (datasheet: no update-ended interrupt while the time is being set).
                _ram[RegisterB] = (byte)(setting ? value & ~Uie : value);
                return true;
            case RegisterC or RegisterD:
                return false;
        }

        var field = FieldOf(index);
        if (field < 0)
        {
            _ram[index] = value;
            return false;
        }

        var running = (_ram[RegisterB] & Set) == 0;
        if (running)
        {
            UpdateLocked(now);
            Hold(CurrentTime(now));
        }

        _held[field] = field == 2 ? DecodeHour(value) : Decode(value);
        if (running)
        {
            // A time register written while the clock runs takes effect at once, keeping the second's phase.
            var whole = FloorDiv(now - _baseNs, Second);
            _base = HeldTime();
            _baseNs += whole * Second;
        }

        return running;
    }

    private void Resume(long now)
    {
        _base = HeldTime();
        _baseNs = now;
        _flagsAt = now;
    }

    // Accumulates the flags of the events in (_flagsAt, now]; returns true when IRQF newly asserts the line.
    private bool UpdateLocked(long now)
    {
        if (now > _flagsAt)
        {
            var shift = PeriodicShift();
            if (shift >= 0 && (Ticks32K(now) >> shift) > (Ticks32K(_flagsAt) >> shift))
            {
                _flags |= Pf;
            }

            if ((_ram[RegisterB] & Set) == 0)
            {
                var first = FloorDiv(_flagsAt - _baseNs, Second) + 1;
                var last = FloorDiv(now - _baseNs, Second);
                if (last >= first)
                {
                    _flags |= Uf;
                    if (AlarmInRange(first, last))
                    {
                        _flags |= Af;
                    }
                }
            }

            _flagsAt = now;
        }

        var irq = (_flags & _ram[RegisterB] & (Pf | Af | Uf)) != 0;
        _flags = irq ? _flags | Irqf : _flags & ~Irqf;
        if (irq && !_asserted)
        {
            _asserted = true;
            return true;
        }

        return false;
    }

    // True when an update at whole second `first`..`last` after the base matched the alarm (at most a day is examined:
    // any alarm that can match does so within one).
    private bool AlarmInRange(long first, long last)
    {
        first = Math.Max(first, last - 86_400);
        for (var k = last; k >= first; k--)
        {
            var time = _base.AddSeconds(k);
            if (AlarmMatches(_ram[1], Encode(time.Second)) && AlarmMatches(_ram[3], Encode(time.Minute)) && AlarmMatches(_ram[5], EncodeHour(time.Hour)))
            {
                return true;
            }
        }

        return false;
    }

    // An alarm byte of 0xC0–0xFF is "don't care".
    private static bool AlarmMatches(byte alarm, int value) => alarm >= 0xC0 || alarm == value;
}
