namespace Hypervisor.Vmm.Devices;

/// <summary>
/// The ACPI PM1a control register at port 0x604 (QEMU q35's PM base 0x600 + 4; also what QEMU guests commonly use
/// with <c>outw(0x604, 0x2000)</c>). Writing SLP_EN (bit 13) with SLP_TYP (bits 10–12) equal to the S5 type
/// (0 in QEMU's DSDT) powers the VM off with exit status 0; other sleep types are not supported and are ignored.
/// The register is 16 bits wide and byte-addressable; SLP_EN is write-only and reads as 0. SCI_EN (bit 0) always reads
/// 1: the machine is in ACPI mode from reset (the FADT has no SMI command port), and writes cannot clear it.
/// </summary>
public sealed class PowerOff : IPortDevice
{
    /// <summary>The register's port.</summary>
    public const ushort Port = 0x604;

    /// <summary>SLP_EN, bit 13.</summary>
    public const ushort SleepEnable = 1 << 13;

    /// <summary>SCI_EN, bit 0: set while the machine is in ACPI mode (always).</summary>
    public const ushort SciEnable = 1 << 0;

    /// <summary>The shift of SLP_TYP (bits 10–12).</summary>
    public const int SleepTypeShift = 10;

    private readonly object _lock = new();
    private readonly VmStopSignal _stop;
    private ushort _value = SciEnable;

    /// <summary>Creates the device.</summary>
    /// <param name="stop">Where the power-off request goes.</param>
    /// <param name="s5SleepType">The SLP_TYP value meaning S5 (soft off), 0–7; QEMU's tables use 0.</param>
    /// <exception cref="ArgumentOutOfRangeException">The sleep type is outside 0–7.</exception>
    public PowerOff(VmStopSignal stop, int s5SleepType = 0)
    {
        ArgumentNullException.ThrowIfNull(stop);
        if (s5SleepType is < 0 or > 7)
        {
            throw new ArgumentOutOfRangeException(nameof(s5SleepType), s5SleepType, $"S5 sleep type {s5SleepType} is invalid: SLP_TYP is a 3-bit field (0–7)");
        }

        _stop = stop;
        S5SleepType = s5SleepType;
    }

    /// <inheritdoc />
    public string Name => "acpi-pm1a-cnt";

    /// <summary>The SLP_TYP value that powers off.</summary>
    public int S5SleepType { get; }

    /// <summary>The register as the guest reads it (SLP_EN clear, SCI_EN set).</summary>
    public ushort Value
    {
        get
        {
            lock (_lock)
            {
                return _value;
            }
        }
    }

    /// <summary>Registers the device at <see cref="Port"/> (2 ports).</summary>
    /// <param name="bus">The bus.</param>
    public void Attach(DeviceBus bus)
    {
        ArgumentNullException.ThrowIfNull(bus);
        bus.RegisterPorts(Port, 2, this);
    }

    /// <inheritdoc />
    public uint ReadPort(ushort port, int size)
    {
        lock (_lock)
        {
            return (uint)_value >> (8 * (port - Port));
        }
    }

    /// <inheritdoc />
    public void WritePort(ushort port, int size, uint value)
    {
        ushort written;
        lock (_lock)
        {
            var shift = 8 * (port - Port);
            var mask = (DeviceBus.SizeMask(size) << shift) & 0xFFFF;
            written = (ushort)((_value & ~mask) | ((value << shift) & mask));
            _value = (ushort)((written & ~SleepEnable) | SciEnable);
        }

        if ((written & SleepEnable) != 0 && ((written >> SleepTypeShift) & 7) == S5SleepType)
        {
            _stop.Post(VmStop.PowerOff(Name));
        }
    }
}
