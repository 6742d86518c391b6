namespace Hypervisor.Vmm.Devices;

/// <summary>
/// One counter of the 8254 (<see cref="Pit8254"/>): its control word, count register, latches, gate, and the counting
/// element's value and OUT computed from the platform clock. Not thread-safe: the PIT's lock guards every member.
/// </summary>
/// <remarks>
/// <para>The counting element is not stepped: with <c>d</c> input-clock ticks elapsed since counting (re)started, each
/// mode's count and OUT are functions of <c>d</c> and the initial count <c>N</c> (0 meaning 65 536), as in the
/// datasheet's waveforms. A count written is taken as loaded at the write (the part loads it on the next CLK, 838 ns
/// later; NULL COUNT stays set until that tick has passed), and a new count in modes 2 and 3 takes effect at once
/// rather than at the end of the current period. BCD counting is not modelled: the BCD bit is stored and reported in
/// the status byte, and the counter counts in binary.</para>
/// </remarks>
internal sealed class PitChannel
{
    private int _count = 0x10000;
    private bool _loaded;
    private bool _running;
    private bool _triggered;
    private long _baseTicks;
    private long _startNs;
    private long _writtenNs;
    private bool _lsbPending;
    private byte _lsb;
    private bool _readMsbNext;
    private int _latchedCount = -1;
    private bool _latchedMsbNext;
    private int _latchedStatus = -1;
    private long _nextEdge = long.MaxValue;

    /// <summary>Creates a counter whose gate input starts at <paramref name="gate"/>.</summary>
    public PitChannel(bool gate)
    {
        Gate = gate;
    }

    /// <summary>The operating mode 0–5 (control-word values 6 and 7 are modes 2 and 3).</summary>
    public int Mode { get; private set; }

    /// <summary>The mode bits as the control word wrote them (0–7), as the status byte reports them.</summary>
    public int ModeBits { get; private set; }

    /// <summary>The read/write mode: 1 LSB only, 2 MSB only, 3 LSB then MSB.</summary>
    public int Access { get; private set; } = 3;

    /// <summary>The BCD bit of the control word (stored only).</summary>
    public bool Bcd { get; private set; }

    /// <summary>The gate input.</summary>
    public bool Gate { get; private set; }

    /// <summary>The initial count in input-clock ticks (1–65 536).</summary>
    public int InitialCount => _count;

    /// <summary>A control word for this counter (bits 5–0: RW, M, BCD; RW non-zero).</summary>
    public void Program(int access, int modeBits, bool bcd, long now)
    {
        Access = access;
        ModeBits = modeBits;
        Mode = modeBits > 5 ? modeBits - 4 : modeBits;
        Bcd = bcd;
        _loaded = false;
        _running = false;
        _triggered = false;
        _baseTicks = 0;
        _lsbPending = false;
        _readMsbNext = false;
        _latchedCount = -1;
        _latchedStatus = -1;
        _nextEdge = long.MaxValue;
        _writtenNs = now;
    }

    /// <summary>A write to the counter's data port.</summary>
    /// <returns>True when the write completed a count (the counter was (re)loaded).</returns>
    public bool WriteData(byte value, long now)
    {
        int count;
        switch (Access)
        {
            case 1:
                count = value;
                break;
            case 2:
                count = value << 8;
                break;
            default:
                if (!_lsbPending)
                {
                    _lsb = value;
                    _lsbPending = true;
                    if (Mode == 0)
                    {
                        // Writing the first byte of a mode-0 count stops counting; OUT stays low.
                        Freeze(now);
                        _loaded = false;
                    }

                    return false;
                }

                _lsbPending = false;
                count = _lsb | (value << 8);
                break;
        }

        Load(count == 0 ? 0x10000 : count, now);
        return true;
    }

    /// <summary>A read of the counter's data port: a latched status, else a latched count, else the live count.</summary>
    public byte ReadData(long now)
    {
        if (_latchedStatus >= 0)
        {
            var status = (byte)_latchedStatus;
            _latchedStatus = -1;
            return status;
        }

        if (_latchedCount >= 0)
        {
            byte b;
            if (Access == 3 && !_latchedMsbNext)
            {
                b = (byte)_latchedCount;
                _latchedMsbNext = true;
                return b;
            }

            b = (byte)(Access == 1 ? _latchedCount : _latchedCount >> 8);
            _latchedCount = -1;
            _latchedMsbNext = false;
            return b;
        }

        var count = Count(now);
        switch (Access)
        {
            case 1:
                return (byte)count;
            case 2:
                return (byte)(count >> 8);
            default:
                var msb = _readMsbNext;
                _readMsbNext = !_readMsbNext;
                return (byte)(msb ? count >> 8 : count);
        }
    }

    /// <summary>The counter latch command (or read-back's COUNT): a count already latched and not yet read is kept.</summary>
    public void LatchCount(long now)
    {
        if (_latchedCount < 0)
        {
            _latchedCount = Count(now);
            _latchedMsbNext = false;
        }
    }

    /// <summary>Read-back's STATUS: a status already latched and not yet read is kept.</summary>
    public void LatchStatus(long now)
    {
        if (_latchedStatus < 0)
        {
            _latchedStatus = Status(now);
        }
    }

    /// <summary>The status byte: OUTPUT (7), NULL COUNT (6), RW (5–4), mode (3–1), BCD (0).</summary>
    public byte Status(long now) =>
        (byte)((Out(now) ? 0x80 : 0) | (NullCount(now) ? 0x40 : 0) | (Access << 4) | (ModeBits << 1) | (Bcd ? 1 : 0));

    /// <summary>The counting element's value now (0 stands for 65 536).</summary>
    public int Count(long now)
    {
        if (!_loaded || (IsTriggeredMode && !_triggered))
        {
            return _count & 0xFFFF;
        }

        var d = Elapsed(now);
        return Mode switch
        {
            2 => (int)(_count - (d % _count)) & 0xFFFF,
            3 => (int)(_count - (2 * d % _count)) & 0xFFFF,
            _ => (int)((_count - d) & 0xFFFF),
        };
    }

    /// <summary>OUT now.</summary>
    public bool Out(long now)
    {
        if (!_loaded)
        {
            return Mode != 0;
        }

        if (IsTriggeredMode && !_triggered)
        {
            return true;
        }

        if (!Gate && Mode is 2 or 3)
        {
            return true;
        }

        var d = Elapsed(now);
        return Mode switch
        {
            0 or 1 => d >= _count,
            2 => d % _count != _count - 1,
            3 => d % _count < (_count + 1) / 2,
            _ => d != _count,
        };
    }

    /// <summary>True from a control word or count write until the count has reached the counting element.</summary>
    public bool NullCount(long now) =>
        !_loaded || (IsTriggeredMode ? !_triggered : now - _writtenNs < Pit8254.TicksToNanoseconds(1));

    /// <summary>Drives the gate input (channel 2 from port 0x61; channels 0 and 1 are tied high).</summary>
    public void SetGate(bool level, long now)
    {
        if (level == Gate)
        {
            return;
        }

        Gate = level;
        if (!_loaded)
        {
            return;
        }

        if (level)
        {
            if (IsTriggeredMode || Mode is 2 or 3)
            {
                // A rising gate triggers modes 1 and 5 and reloads modes 2 and 3 (whose counting a low gate stopped).
                _triggered = true;
                Start(0, now);
            }
            else
            {
                Start(_baseTicks, now);
            }
        }
        else if (!IsTriggeredMode)
        {
            Freeze(now);
        }

        RecomputeEdge(now);
    }

    /// <summary>The platform time of OUT's next rising edge, or <see cref="long.MaxValue"/>.</summary>
    public long NextRisingEdge => _nextEdge;

    /// <summary>After OUT's rising edge at or before <paramref name="now"/>: true when one was due (and moves to the next).</summary>
    public bool TakeRisingEdge(long now)
    {
        if (_nextEdge > now)
        {
            return false;
        }

        RecomputeEdge(now);
        return true;
    }

    private bool IsTriggeredMode => Mode is 1 or 5;

    private void Load(int count, long now)
    {
        _count = count;
        _loaded = true;
        _writtenNs = now;
        _readMsbNext = false;
        if (IsTriggeredMode)
        {
            // Modes 1 and 5 wait for a rising gate; a count written while triggered applies at the next trigger.
            _running = _triggered;
            if (!_triggered)
            {
                _baseTicks = 0;
            }
        }
        else
        {
            _baseTicks = 0;
            _running = Gate;
            _startNs = now;
        }

        RecomputeEdge(now);
    }

    private void Start(long baseTicks, long now)
    {
        _baseTicks = baseTicks;
        _startNs = now;
        _running = true;
    }

    private void Freeze(long now)
    {
        _baseTicks = Elapsed(now);
        _running = false;
    }

    private long Elapsed(long now) => _baseTicks + (_running ? Pit8254.NanosecondsToTicks(now - _startNs) : 0);

    // The rising edges of OUT: mode 0 and 1 at N, modes 4 and 5 at N + 1 (after the one-clock low strobe), modes 2 and 3 at every multiple of N.
    private void RecomputeEdge(long now)
    {
        if (!_loaded || !_running || (IsTriggeredMode && !_triggered))
        {
            _nextEdge = long.MaxValue;
            return;
        }

        var d = Elapsed(now);
        long edge = Mode switch
        {
            0 or 1 => d < _count ? _count : long.MaxValue,
            4 or 5 => d < _count + 1 ? _count + 1 : long.MaxValue,
            _ => (d / _count + 1) * _count,
        };
        _nextEdge = edge == long.MaxValue ? long.MaxValue : _startNs + Pit8254.TicksToNanoseconds(edge - _baseTicks);
    }
}
