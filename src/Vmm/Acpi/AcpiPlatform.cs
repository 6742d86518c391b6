namespace Hypervisor.Vmm.Acpi;

/// <summary>
/// The fixed ACPI hardware of the VM, as the tables describe it and the devices implement it: the PM1a event block,
/// the PM1a control block (<see cref="Devices.PowerOff"/>), the PM timer, the SCI's ISA IRQ, the reset register (the
/// i8042's pulse-reset command) and where the tables live in guest memory.
/// </summary>
public static class AcpiPlatform
{
    /// <summary>PM1a_EVT_BLK: PM1_STS at 0x600 and PM1_EN at 0x602 (16 bits each).</summary>
    public const ushort Pm1aEventPort = 0x600;

    /// <summary>PM1_EVT_LEN: the status and enable registers, 2 bytes each.</summary>
    public const byte Pm1EventLength = 4;

    /// <summary>PM1a_CNT_BLK (the <see cref="Devices.PowerOff"/> register).</summary>
    public const ushort Pm1aControlPort = Devices.PowerOff.Port;

    /// <summary>PM1_CNT_LEN.</summary>
    public const byte Pm1ControlLength = 2;

    /// <summary>PM_TMR_BLK.</summary>
    public const ushort PmTimerPort = 0x608;

    /// <summary>PM_TMR_LEN.</summary>
    public const byte PmTimerLength = 4;

    /// <summary>The PM timer's frequency in Hz (ACPI: 3.579545 MHz).</summary>
    public const long PmTimerHz = 3_579_545;

    /// <summary>SCI_INT: the ISA IRQ (and, through the MADT's override, the I/O APIC pin) of the SCI.</summary>
    public const byte SciIrq = 9;

    /// <summary>The reset register: the i8042's command port.</summary>
    public const ushort ResetPort = 0x64;

    /// <summary>The value written to <see cref="ResetPort"/> to reset (the i8042's pulse-reset-line command).</summary>
    public const byte ResetValue = 0xFE;

    /// <summary>The CMOS RTC index of the century byte.</summary>
    public const byte CenturyIndex = 0x32;

    /// <summary>
    /// The first byte of the tables' window: 0xE0000, the start of the BIOS area that Linux's legacy RSDP scan
    /// searches (16-byte boundaries up to 1 MiB) and that the memory map leaves out of RAM.
    /// </summary>
    public const ulong TablesBase = 0xE_0000;

    /// <summary>The end (exclusive) of the tables' window: 1 MiB.</summary>
    public const ulong TablesEnd = 0x10_0000;
}
