namespace Hypervisor.Vmm.Devices;

/// <summary>
/// A minimal 8042 keyboard controller at ports 0x60 (data) and 0x64 (status on read, command on write), with no
/// keyboard or mouse attached: enough for a guest to probe it and to reset the machine through it.
/// </summary>
/// <remarks>
/// <para>Status: OBF (bit 0) while a reply waits in the output buffer, AUXB (bit 5) when that reply is the auxiliary
/// port's, the system flag (bit 2, set as after a successful power-on self-test), bit 3 the last write's port
/// (1 = command), bit 4 the inhibit switch (1 = not inhibited). The input buffer is never full.</para>
/// <para>Commands: 0x20 read and 0x60 write the configuration byte (its bit 2 is the system flag); 0xAA self-test →
/// 0x55; 0xAB keyboard and 0xA9 auxiliary interface tests → 0 (no fault); 0xAD/0xAE and 0xA7/0xA8 disable/enable
/// the keyboard and auxiliary interfaces (configuration bits 4 and 5); 0xD0/0xD1 read/write the output port; 0xD2/0xD3
/// echo the next data byte as keyboard/auxiliary input (Linux's loop test); 0xD4 sends the next data byte to the
/// (absent) mouse; 0xF0–0xFF pulse the output-port bits whose command bit is 0 — bit 0 is the CPU reset line, so
/// 0xFE (or an output-port write with bit 0 clear) resets the machine, which stops the VM as QEMU's
/// <c>-no-reboot</c> does (<see cref="VmStopReason.Reset"/>, exit status 0). Data written for the keyboard or mouse is
/// discarded unanswered, as by an empty socket; unknown commands are ignored. No interrupt is raised: nothing but
/// command replies ever fills the output buffer, and a guest polls for those.</para>
/// <para>Thread-safe.</para>
/// </remarks>
public sealed class I8042 : IPortDevice
{
    /// <summary>The data port.</summary>
    public const ushort DataPort = 0x60;

    /// <summary>The status/command port.</summary>
    public const ushort CommandPort = 0x64;

    /// <summary>The command that pulses the CPU reset line.</summary>
    public const byte ResetCommand = 0xFE;

    /// <summary>The configuration byte at reset: translation, system flag, keyboard and auxiliary interrupts enabled.</summary>
    public const byte InitialConfiguration = 0x47;

    private const int OutputFull = 0x01;
    private const int SystemFlag = 0x04;
    private const int LastWasCommand = 0x08;
    private const int NotInhibited = 0x10;
    private const int AuxData = 0x20;

    private readonly Lock _lock = new();
    private readonly VmStopSignal _stop;
    private readonly Queue<(byte Value, bool Aux)> _output = new();
    private byte _configuration = InitialConfiguration;
    private byte _outputPort = 0x03;
    private byte _lastRead;
    private bool _lastWasCommand;
    private int _pending = -1;

    /// <summary>Creates the controller posting resets to <paramref name="stop"/>.</summary>
    /// <param name="stop">Where the reset request goes.</param>
    public I8042(VmStopSignal stop)
    {
        ArgumentNullException.ThrowIfNull(stop);
        _stop = stop;
    }

    /// <inheritdoc />
    public string Name => "i8042";

    /// <summary>The controller configuration byte.</summary>
    public byte Configuration
    {
        get
        {
            lock (_lock)
            {
                return _configuration;
            }
        }
    }

    /// <summary>Registers ports 0x60 and 0x64.</summary>
    /// <param name="bus">The bus.</param>
    public void Attach(DeviceBus bus)
    {
        ArgumentNullException.ThrowIfNull(bus);
        bus.RegisterPorts(DataPort, 1, this);
        bus.RegisterPorts(CommandPort, 1, this);
    }

    /// <inheritdoc />
    public uint ReadPort(ushort port, int size)
    {
        lock (_lock)
        {
            if (port == CommandPort)
            {
                var status = (_configuration & SystemFlag) | NotInhibited | (_lastWasCommand ? LastWasCommand : 0);
                if (_output.TryPeek(out var head))
                {
                    status |= OutputFull | (head.Aux ? AuxData : 0);
                }

                return (uint)status;
            }

            // An empty output buffer reads as the last byte read, as on the part.
            if (_output.TryDequeue(out var next))
            {
                _lastRead = next.Value;
            }

            return _lastRead;
        }
    }

    /// <inheritdoc />
    public void WritePort(ushort port, int size, uint value)
    {
        var b = (byte)value;
        bool reset;
        lock (_lock)
        {
            _lastWasCommand = port == CommandPort;
            reset = port == CommandPort ? CommandLocked(b) : DataLocked(b);
        }

        if (reset)
        {
            _stop.Post(VmStop.Reset(Name));
        }
    }

    // Returns true when the command pulses the reset line.
    private bool CommandLocked(byte command)
    {
        _pending = -1;
        switch (command)
        {
            case 0x20:
                Reply(_configuration);
                break;
            case 0x60 or 0xD1 or 0xD2 or 0xD3 or 0xD4:
                _pending = command;
                break;
            case 0xA7:
                _configuration |= 0x20;
                break;
            case 0xA8:
                _configuration &= 0xDF;
                break;
            case 0xA9 or 0xAB:
                Reply(0x00);
                break;
            case 0xAA:
                _configuration |= SystemFlag;
                Reply(0x55);
                break;
            case 0xAD:
                _configuration |= 0x10;
                break;
            case 0xAE:
                _configuration &= 0xEF;
                break;
            case 0xD0:
                Reply(_outputPort);
                break;
            case >= 0xF0:
                return (command & 1) == 0;
        }

        return false;
    }

    private bool DataLocked(byte value)
    {
        var pending = _pending;
        _pending = -1;
        switch (pending)
        {
            case 0x60:
                _configuration = value;
                break;
            case 0xD1:
                _outputPort = value;
                return (value & 1) == 0;
            case 0xD2:
                Reply(value);
                break;
            case 0xD3:
                Reply(value, aux: true);
                break;
        }

        // Otherwise (and after 0xD4) the byte is for a keyboard or mouse that is not there.
        return false;
    }

    private void Reply(byte value, bool aux = false)
    {
        // The output buffer is one byte on the part; replies beyond a few are dropped rather than queued without bound.
        if (_output.Count < 16)
        {
            _output.Enqueue((value, aux));
        }
    }
}
