using System.Text;

namespace Hypervisor.Vmm.Devices;

/// <summary>
/// A 16550A UART (COM1 at 0x3F8–0x3FF). Transmit is always ready: THR writes go straight to the guest console and
/// LSR always reports THRE|TEMT; DR is set while queued input remains. The divisor latch (DLAB in LCR), IER, IIR/FCR,
/// LCR, MCR and SCR behave as registers; loopback (MCR bit 4) routes THR to the receive queue and reflects MCR in MSR,
/// as the Linux 8250 probe expects. The interrupt line (received data available with IER bit 0, THR empty with IER
/// bit 1, gated by MCR's OUT2 as on a PC and quiet in loopback) is reported through <see cref="InterruptLine"/> each
/// time its level changes; the VM wires it to the I/O APIC's pin 4.
/// </summary>
public sealed class Uart16550 : IPortDevice
{
    /// <summary>COM1's base port.</summary>
    public const ushort Com1 = 0x3F8;

    /// <summary>LSR data ready.</summary>
    public const byte LsrDataReady = 0x01;

    /// <summary>LSR transmit holding register empty.</summary>
    public const byte LsrThrEmpty = 0x20;

    /// <summary>LSR transmitter empty.</summary>
    public const byte LsrTransmitterEmpty = 0x40;

    private const byte LcrDlab = 0x80;
    private const byte McrLoopback = 0x10;
    private const byte McrOut2 = 0x08;
    private const byte IirNoInterrupt = 0x01;
    private const byte IirThrEmpty = 0x02;
    private const byte IirReceivedData = 0x04;
    private const byte IirFifoEnabled = 0xC0;

    private readonly object _lock = new();
    private readonly GuestConsole _console;
    private readonly Queue<byte> _input = new();
    private byte _ier;
    private byte _lcr;
    private byte _mcr;
    private byte _scr;
    private byte _fcr;
    private bool _thrInterruptPending;
    private bool _line;

    /// <summary>Creates the UART at <paramref name="basePort"/>.</summary>
    /// <param name="console">Where transmitted bytes go.</param>
    /// <param name="basePort">The first of its 8 ports (COM1 by default).</param>
    /// <param name="input">Text (UTF-8) queued for the guest to receive, or null.</param>
    /// <exception cref="ArgumentOutOfRangeException">The 8 ports would run past 0xFFFF.</exception>
    public Uart16550(GuestConsole console, ushort basePort = Com1, string? input = null)
    {
        ArgumentNullException.ThrowIfNull(console);
        if (basePort > 0xFFF8)
        {
            throw new ArgumentOutOfRangeException(nameof(basePort), basePort, $"UART base port 0x{basePort:X4} is invalid: its 8 ports must end at or below 0xFFFF");
        }

        _console = console;
        BasePort = basePort;
        DivisorLatch = 12; // 9600 baud, the usual firmware default.
        if (input is not null)
        {
            EnqueueInput(input);
        }
    }

    /// <inheritdoc />
    public string Name => $"uart16550@0x{BasePort:X3}";

    /// <summary>The first of the UART's 8 ports.</summary>
    public ushort BasePort { get; }

    /// <summary>The divisor latch (DLM:DLL).</summary>
    public ushort DivisorLatch { get; private set; }

    /// <summary>Interrupt enable register.</summary>
    public byte InterruptEnable { get { lock (_lock) { return _ier; } } }

    /// <summary>Line control register.</summary>
    public byte LineControl { get { lock (_lock) { return _lcr; } } }

    /// <summary>Modem control register.</summary>
    public byte ModemControl { get { lock (_lock) { return _mcr; } } }

    /// <summary>Scratch register.</summary>
    public byte Scratch { get { lock (_lock) { return _scr; } } }

    /// <summary>Bytes queued for the guest to receive.</summary>
    public int PendingInput { get { lock (_lock) { return _input.Count; } } }

    /// <summary>
    /// Called with the new level whenever the UART's interrupt output changes (under the UART's lock: the callee must not
    /// call back into the UART). Set before the guest runs.
    /// </summary>
    public Action<bool>? InterruptLine { get; set; }

    /// <summary>The interrupt output's level now.</summary>
    public bool InterruptAsserted { get { lock (_lock) { return _line; } } }

    /// <summary>Registers the UART's 8 ports.</summary>
    /// <param name="bus">The bus.</param>
    public void Attach(DeviceBus bus)
    {
        ArgumentNullException.ThrowIfNull(bus);
        bus.RegisterPorts(BasePort, 8, this);
    }

    /// <summary>Queues <paramref name="text"/> (as UTF-8) for the guest to receive.</summary>
    /// <param name="text">The text.</param>
    public void EnqueueInput(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        EnqueueInput(Encoding.UTF8.GetBytes(text));
    }

    /// <summary>Queues bytes for the guest to receive.</summary>
    /// <param name="bytes">The bytes.</param>
    public void EnqueueInput(ReadOnlySpan<byte> bytes)
    {
        lock (_lock)
        {
            foreach (var b in bytes)
            {
                _input.Enqueue(b);
            }

            UpdateLineLocked();
        }
    }

    /// <inheritdoc />
    public uint ReadPort(ushort port, int size)
    {
        uint value = 0;
        lock (_lock)
        {
            for (var i = 0; i < size; i++)
            {
                value |= (uint)ReadRegister(port + i - BasePort) << (8 * i);
            }

            UpdateLineLocked();
        }

        return value;
    }

    /// <inheritdoc />
    public void WritePort(ushort port, int size, uint value)
    {
        lock (_lock)
        {
            for (var i = 0; i < size; i++)
            {
                WriteRegister(port + i - BasePort, (byte)(value >> (8 * i)));
            }

            UpdateLineLocked();
        }
    }

    private bool Dlab => (_lcr & LcrDlab) != 0;

    private byte ReadRegister(int register)
    {
        switch (register)
        {
            case 0:
                if (Dlab)
                {
                    return (byte)DivisorLatch;
                }

                return _input.TryDequeue(out var b) ? b : (byte)0;
            case 1:
                return Dlab ? (byte)(DivisorLatch >> 8) : _ier;
            case 2:
                return ReadIir();
            case 3:
                return _lcr;
            case 4:
                return _mcr;
            case 5:
                return (byte)(LsrThrEmpty | LsrTransmitterEmpty | (_input.Count > 0 ? LsrDataReady : 0));
            case 6:
                return ModemStatus();
            default:
                return _scr;
        }
    }

    private void WriteRegister(int register, byte value)
    {
        switch (register)
        {
            case 0:
                if (Dlab)
                {
                    DivisorLatch = (ushort)((DivisorLatch & 0xFF00) | value);
                }
                else if ((_mcr & McrLoopback) != 0)
                {
                    _input.Enqueue(value);
                    _thrInterruptPending = true;
                }
                else
                {
                    _console.Write(value);
                    _thrInterruptPending = true;
                }

                break;
            case 1:
                if (Dlab)
                {
                    DivisorLatch = (ushort)((DivisorLatch & 0x00FF) | (value << 8));
                }
                else
                {
                    // Enabling the THRE interrupt while THR is empty raises it at once, as on a real 16550.
                    if ((value & 0x02) != 0 && (_ier & 0x02) == 0)
                    {
                        _thrInterruptPending = true;
                    }

                    _ier = (byte)(value & 0x0F);
                }

                break;
            case 2:
                _fcr = value;
                if ((value & 0x02) != 0)
                {
                    _input.Clear();
                }

                break;
            case 3:
                _lcr = value;
                break;
            case 4:
                _mcr = (byte)(value & 0x1F);
                break;
            case 5:
            case 6:
                break; // LSR and MSR are read-only.
            default:
                _scr = value;
                break;
        }
    }

    private void UpdateLineLocked()
    {
        var level = (_mcr & (McrOut2 | McrLoopback)) == McrOut2
            && (((_ier & 0x01) != 0 && _input.Count > 0) || ((_ier & 0x02) != 0 && _thrInterruptPending));
        if (level != _line)
        {
            _line = level;
            InterruptLine?.Invoke(level);
        }
    }

    private byte ReadIir()
    {
        var fifo = (_fcr & 0x01) != 0 ? IirFifoEnabled : (byte)0;
        if ((_ier & 0x01) != 0 && _input.Count > 0)
        {
            return (byte)(fifo | IirReceivedData);
        }

        if ((_ier & 0x02) != 0 && _thrInterruptPending)
        {
            _thrInterruptPending = false; // Reading IIR clears a THRE identification.
            return (byte)(fifo | IirThrEmpty);
        }

        return (byte)(fifo | IirNoInterrupt);
    }

    private byte ModemStatus()
    {
        if ((_mcr & McrLoopback) == 0)
        {
            return 0xB0; // DCD | DSR | CTS: a connected terminal, as QEMU reports.
        }

        // Loopback: DTR→DSR, RTS→CTS, OUT1→RI, OUT2→DCD.
        var msr = 0;
        if ((_mcr & 0x01) != 0)
        {
            msr |= 0x20;
        }

        if ((_mcr & 0x02) != 0)
        {
            msr |= 0x10;
        }

        if ((_mcr & 0x04) != 0)
        {
            msr |= 0x40;
        }

        if ((_mcr & 0x08) != 0)
        {
            msr |= 0x80;
        }

        return (byte)msr;
    }
}
