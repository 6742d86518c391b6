namespace Hypervisor.Vmm.Devices;

/// <summary>
/// The 8254 programmable interval timer at ports 0x40–0x43 (input clock 1 193 182 Hz) and the PC's system control
/// port B at 0x61. Counter 0's OUT drives IRQ0 (on a PC, I/O APIC pin 2 through the ISA override IRQ0 → GSI 2): each
/// rising edge raises and lowers <see cref="InterruptLine"/>. Counter 2's gate is port 0x61 bit 0 and its OUT is bit 5;
/// bit 1 (speaker data) and bits 2–3 are stored, bit 4 is the refresh-request toggle, flipping every 15.085 µs.
/// </summary>
/// <remarks>
/// <para>Port 0x43 takes a control word (SC, RW, M, BCD): RW = 0 is the counter latch command, SC = 3 the read-back
/// command (bit 5 clear latches the counts, bit 4 clear the status bytes, of the counters selected by bits 3–1).
/// Modes 0–5 follow the datasheet's waveforms (see <see cref="PitChannel"/> for what is simplified; BCD counting is
/// not modelled). Reads of 0x43 return 0xFF (the port is write-only).</para>
/// <para>Time is <see cref="PlatformTimers.Clock"/>; the device is one of the platform's timers (counter 0's next rising
/// edge is its deadline) and calls <see cref="PlatformTimers.Changed"/> whenever the guest moves that edge.</para>
/// <para>Thread-safe. Lock order: the device's lock is never held while <see cref="InterruptLine"/> or the timers' kick runs.</para>
/// </remarks>
public sealed class Pit8254 : IPortDevice, IPlatformTimer
{
    /// <summary>The input clock in Hz.</summary>
    public const long InputHz = 1_193_182;

    /// <summary>Counter 0's data port (counters 1 and 2 follow).</summary>
    public const ushort Counter0Port = 0x40;

    /// <summary>The control-word port.</summary>
    public const ushort ControlPort = 0x43;

    /// <summary>System control port B.</summary>
    public const ushort PortB = 0x61;

    /// <summary>The refresh toggle's half period in nanoseconds (bit 4 of port 0x61 flips this often).</summary>
    public const long RefreshHalfPeriodNs = 15_085;

    /// <summary>The I/O APIC pin IRQ0 reaches on a PC (the ISA override IRQ0 → GSI 2).</summary>
    public const int IoApicPin = 2;

    private readonly Lock _lock = new();
    private readonly PlatformTimers _timers;
    private readonly PitChannel[] _channels = [new(gate: true), new(gate: true), new(gate: false)];
    private byte _portB;
    private long _irqPulses;

    /// <summary>Creates the PIT on <paramref name="timers"/> (and registers it there).</summary>
    /// <param name="timers">The platform clock and timer set.</param>
    public Pit8254(PlatformTimers timers)
    {
        ArgumentNullException.ThrowIfNull(timers);
        _timers = timers;
        timers.Register(this);
    }

    /// <inheritdoc />
    public string Name => "i8254";

    /// <summary>IRQ0's line: called with true then false at each rising edge of counter 0's OUT; null for none.</summary>
    public Action<bool>? InterruptLine { get; set; }

    /// <summary>Whether IRQ0 can reach a CPU now (its I/O APIC pin unmasked); null means always.</summary>
    public Func<bool>? InterruptRouted { get; set; }

    /// <summary>IRQ0 pulses sent.</summary>
    public long InterruptPulses => Interlocked.Read(ref _irqPulses);

    /// <inheritdoc />
    public bool CanInterrupt => InterruptLine is not null && (InterruptRouted?.Invoke() ?? true);

    /// <summary>Whole input-clock ticks in <paramref name="nanoseconds"/> (0 for a negative span).</summary>
    /// <param name="nanoseconds">A span of platform time.</param>
    /// <returns>floor(ns × 1 193 182 / 10⁹).</returns>
    public static long NanosecondsToTicks(long nanoseconds) =>
        nanoseconds <= 0 ? 0 : (long)((Int128)nanoseconds * InputHz / 1_000_000_000);

    /// <summary>The shortest span holding <paramref name="ticks"/> input-clock ticks.</summary>
    /// <param name="ticks">Ticks (non-negative).</param>
    /// <returns>ceil(ticks × 10⁹ / 1 193 182) nanoseconds.</returns>
    public static long TicksToNanoseconds(long ticks) =>
        (long)(((Int128)ticks * 1_000_000_000 + InputHz - 1) / InputHz);

    /// <summary>Registers ports 0x40–0x43 and 0x61.</summary>
    /// <param name="bus">The bus.</param>
    public void Attach(DeviceBus bus)
    {
        ArgumentNullException.ThrowIfNull(bus);
        bus.RegisterPorts(Counter0Port, 4, this);
        bus.RegisterPorts(PortB, 1, this);
    }

    /// <summary>Counter <paramref name="channel"/>'s count now (0 stands for 65 536), without disturbing latches or flip-flops.</summary>
    /// <param name="channel">0–2.</param>
    public int CountOf(int channel)
    {
        var now = _timers.Now;
        lock (_lock)
        {
            return _channels[channel].Count(now);
        }
    }

    /// <summary>Counter <paramref name="channel"/>'s OUT now.</summary>
    /// <param name="channel">0–2.</param>
    public bool OutOf(int channel)
    {
        var now = _timers.Now;
        lock (_lock)
        {
            return _channels[channel].Out(now);
        }
    }

    /// <inheritdoc />
    public uint ReadPort(ushort port, int size)
    {
        var now = _timers.Now;
        uint value = 0;
        lock (_lock)
        {
            for (var i = 0; i < size; i++)
            {
                value |= (uint)ReadByteLocked(port + i, now) << (8 * i);
            }
        }

        return value;
    }

    /// <inheritdoc />
    public void WritePort(ushort port, int size, uint value)
    {
        var now = _timers.Now;
        bool changed;
        lock (_lock)
        {
            var before = _channels[0].NextRisingEdge;
            for (var i = 0; i < size; i++)
            {
                WriteByteLocked(port + i, (byte)(value >> (8 * i)), now);
            }

            changed = _channels[0].NextRisingEdge != before;
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
            return _channels[0].NextRisingEdge;
        }
    }

    /// <inheritdoc />
    public void Fire(long now)
    {
        bool edge;
        lock (_lock)
        {
            edge = _channels[0].TakeRisingEdge(now);
        }

        if (edge && InterruptLine is { } line)
        {
            Interlocked.Increment(ref _irqPulses);
            line(true);
            line(false);
        }
    }

    private byte ReadByteLocked(int port, long now)
    {
        switch (port)
        {
            case PortB:
                var refresh = (now / RefreshHalfPeriodNs & 1) != 0;
                var channel2 = _channels[2];
                return (byte)((_portB & 0x0F) | (refresh ? 0x10 : 0) | (channel2.Out(now) ? 0x20 : 0));
            case ControlPort:
                return 0xFF;
            default:
                return _channels[port - Counter0Port].ReadData(now);
        }
    }

    private void WriteByteLocked(int port, byte value, long now)
    {
        switch (port)
        {
            case PortB:
                _portB = (byte)(value & 0x0F);
                _channels[2].SetGate((value & 1) != 0, now);
                break;
            case ControlPort:
                WriteControlLocked(value, now);
                break;
            default:
                _channels[port - Counter0Port].WriteData(value, now);
                break;
        }
    }

    private void WriteControlLocked(byte value, long now)
    {
        var select = value >> 6;
        if (select == 3)
        {
            // Read-back: bit 5 clear latches counts, bit 4 clear latches status, bits 3–1 select counters 2, 1, 0.
            for (var c = 0; c < 3; c++)
            {
                if ((value & (2 << c)) == 0)
                {
                    continue;
                }

                if ((value & 0x10) == 0)
                {
                    _channels[c].LatchStatus(now);
                }

                if ((value & 0x20) == 0)
                {
                    _channels[c].LatchCount(now);
                }
            }

            return;
        }

        var access = (value >> 4) & 3;
        if (access == 0)
        {
            _channels[select].LatchCount(now);
            return;
        }

        _channels[select].Program(access, (value >> 1) & 7, (value & 1) != 0, now);
    }
}
