using Hypervisor.Vmm.Acpi;

namespace Hypervisor.Vmm.Devices;

/// <summary>
/// The ACPI PM1a event block at port 0x600: PM1_STS (0x600, 16 bits; write 1 to clear a bit) and PM1_EN (0x602, 16
/// bits). A status bit whose enable bit is set asserts the SCI (<see cref="SciLine"/>, ISA IRQ 9, level-triggered and
/// active high as the MADT says) until the OS clears the status or the enable. Events come from <see cref="Signal"/>;
/// this machine has no fixed power or sleep button and no RTC wake (the FADT says so), so nothing raises one yet.
/// </summary>
/// <remarks>Invariant: the SCI line is asserted exactly while <c>PM1_STS &amp; PM1_EN &amp; <see cref="SciSources"/></c> is non-zero.</remarks>
public sealed class AcpiPm1Event : IPortDevice
{
    /// <summary>The block's first port (PM1_STS).</summary>
    public const ushort Port = AcpiPlatform.Pm1aEventPort;

    /// <summary>PM1_EN's port.</summary>
    public const ushort EnablePort = Port + 2;

    /// <summary>TMR_STS / TMR_EN (bit 0).</summary>
    public const ushort Timer = 1 << 0;

    /// <summary>BM_STS (bit 4; no enable).</summary>
    public const ushort BusMaster = 1 << 4;

    /// <summary>GBL_STS / GBL_EN (bit 5).</summary>
    public const ushort Global = 1 << 5;

    /// <summary>PWRBTN_STS / PWRBTN_EN (bit 8).</summary>
    public const ushort PowerButton = 1 << 8;

    /// <summary>SLPBTN_STS / SLPBTN_EN (bit 9).</summary>
    public const ushort SleepButton = 1 << 9;

    /// <summary>RTC_STS / RTC_EN (bit 10).</summary>
    public const ushort Rtc = 1 << 10;

    /// <summary>WAK_STS (bit 15; no enable).</summary>
    public const ushort Wake = 1 << 15;

    /// <summary>The status bits that can raise the SCI when enabled.</summary>
    public const ushort SciSources = Timer | Global | PowerButton | SleepButton | Rtc;

    /// <summary>The PM1_STS bits that exist.</summary>
    public const ushort StatusBits = SciSources | BusMaster | Wake;

    /// <summary>The PM1_EN bits that exist (bit 14, PCIEXP_WAKE_DIS, is stored as well).</summary>
    public const ushort EnableBits = SciSources | (1 << 14);

    private readonly object _lock = new();
    private ushort _status;
    private ushort _enable;
    private bool _sci;

    /// <inheritdoc />
    public string Name => "acpi-pm1a-evt";

    /// <summary>The SCI's interrupt line (set before the VM runs), or null.</summary>
    public Action<bool>? SciLine { get; set; }

    /// <summary>PM1_STS.</summary>
    public ushort Status
    {
        get
        {
            lock (_lock)
            {
                return _status;
            }
        }
    }

    /// <summary>PM1_EN.</summary>
    public ushort Enable
    {
        get
        {
            lock (_lock)
            {
                return _enable;
            }
        }
    }

    /// <summary>Registers the block's 4 ports.</summary>
    /// <param name="bus">The bus.</param>
    public void Attach(DeviceBus bus)
    {
        ArgumentNullException.ThrowIfNull(bus);
        bus.RegisterPorts(Port, AcpiPlatform.Pm1EventLength, this);
    }

    /// <summary>Sets status bits (an event happened) and raises the SCI if one of them is enabled.</summary>
    /// <param name="status">PM1_STS bits.</param>
    /// <exception cref="ArgumentOutOfRangeException">A bit is not a PM1_STS bit.</exception>
    public void Signal(ushort status)
    {
        if ((status & ~StatusBits) != 0)
        {
            throw new ArgumentOutOfRangeException(nameof(status), status, $"PM1_STS bits 0x{status:x4} are invalid: the status bits are 0x{StatusBits:x4}");
        }

        Update(() => _status |= status);
    }

    /// <inheritdoc />
    public uint ReadPort(ushort port, int size)
    {
        lock (_lock)
        {
            var block = _status | ((uint)_enable << 16);
            return (block >> (8 * (port - Port))) & DeviceBus.SizeMask(size);
        }
    }

    /// <inheritdoc />
    public void WritePort(ushort port, int size, uint value)
    {
        var shift = 8 * (port - Port);
        var mask = (ulong)DeviceBus.SizeMask(size) << shift;
        var written = (ulong)value << shift;
        Update(() =>
        {
            _status &= (ushort)~(written & mask & StatusBits);
            var enableMask = (ushort)((mask >> 16) & EnableBits);
            _enable = (ushort)((_enable & ~enableMask) | ((ushort)(written >> 16) & enableMask));
        });
    }

    private void Update(Action change)
    {
        // The line is driven under the lock so that two updates cannot reach it in the opposite order.
        lock (_lock)
        {
            change();
            var level = (_status & _enable & SciSources) != 0;
            if (level != _sci)
            {
                _sci = level;
                SciLine?.Invoke(level);
            }
        }
    }
}
