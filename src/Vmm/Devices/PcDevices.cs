using Hypervisor.Vmm.Acpi;

namespace Hypervisor.Vmm.Devices;

/// <summary>
/// The standard device set of a VM, built and attached in one call: debug console 0xE9, COM1 16550 at 0x3F8, debug
/// exit 0xF4, the 8254 PIT at 0x40–0x43 with port B at 0x61 (IRQ0 on I/O APIC pin 2), the MC146818 RTC/CMOS at 0x70/0x71 (IRQ8 on pin 8), the i8042 at 0x60/0x64,
/// fw_cfg 0x510/0x511, the PICs, the ACPI fixed hardware (PM1a event block 0x600 with the SCI on I/O APIC pin 9,
/// PM1a control / power-off 0x604, PM timer 0x608), an I/O APIC at 0xFEC00000 (COM1 on pin 4), and a local APIC per vCPU on an
/// <see cref="InterruptRouter"/> (vCPU 0's page is also on the bus at 0xFEE00000, for an accelerator whose vCPUs reach it there). The same
/// set serves both accelerators, so runs can be compared.
/// </summary>
public sealed class PcDevices
{
    private PcDevices(DeviceBus bus, GuestConsole console, VmStopSignal stop, int cpuCount, ulong ramSize, string? serialInput)
    {
        Bus = bus;
        Console = console;
        Stop = stop;
        DebugConsole = new DebugConsole(console);
        Uart = new Uart16550(console, Uart16550.Com1, serialInput);
        DebugExit = new DebugExit(stop);
        FwCfg = new FwCfg(cpuCount, ramSize);
        Pic = new PicStub();
        PowerOff = new PowerOff(stop);
        Pm1Event = new AcpiPm1Event();
        PmTimer = new AcpiPmTimer();
        Interrupts = new InterruptRouter(Math.Clamp(cpuCount, 1, 256));
        LocalApic = Interrupts.ApicOf(0);
        IoApic = new IoApic(Interrupts);
        Uart.InterruptLine = level => IoApic.SetLine(IoApic.Com1Pin, level);
        Pm1Event.SciLine = level => IoApic.SetLine(AcpiPlatform.SciIrq, level);
        Timers = new PlatformTimers();
        Pit = new Pit8254(Timers)
        {
            InterruptLine = level => IoApic.SetLine(Pit8254.IoApicPin, level),
            InterruptRouted = () => (IoApic.EntryOf(Pit8254.IoApicPin) & IoApic.Masked) == 0,
        };
        Keyboard = new I8042(stop);
        Rtc = new CmosRtc(Timers)
        {
            InterruptLine = level => IoApic.SetLine(CmosRtc.IoApicPin, level),
            InterruptRouted = () => (IoApic.EntryOf(CmosRtc.IoApicPin) & IoApic.Masked) == 0,
        };
    }

    /// <summary>The i8042 keyboard controller at 0x60/0x64 (its 0xFE command resets, stopping the VM).</summary>
    public I8042 Keyboard { get; }

    /// <summary>The MC146818 RTC and CMOS RAM at 0x70/0x71; IRQ8 drives I/O APIC pin 8.</summary>
    public CmosRtc Rtc { get; }

    /// <summary>
    /// The platform clock and the timer devices on it (the PIT, the RTC). Its clock is the host's monotonic clock until
    /// the interpreter's boot vCPU takes it over (<see cref="Cpu.X86Cpu.PlatformTimers"/>).
    /// </summary>
    public PlatformTimers Timers { get; }

    /// <summary>The 8254 PIT at 0x40–0x43 and port B at 0x61; IRQ0 drives I/O APIC pin 2.</summary>
    public Pit8254 Pit { get; }

    /// <summary>The I/O APIC at 0xFEC00000; COM1's interrupt drives its pin 4.</summary>
    public IoApic IoApic { get; }

    /// <summary>The bus the devices sit on.</summary>
    public DeviceBus Bus { get; }

    /// <summary>The guest console shared by the debug console and the UART.</summary>
    public GuestConsole Console { get; }

    /// <summary>Where the exit devices post stop requests.</summary>
    public VmStopSignal Stop { get; }

    /// <summary>Port 0xE9.</summary>
    public DebugConsole DebugConsole { get; }

    /// <summary>COM1.</summary>
    public Uart16550 Uart { get; }

    /// <summary>Port 0xF4.</summary>
    public DebugExit DebugExit { get; }

    /// <summary>Ports 0x510/0x511.</summary>
    public FwCfg FwCfg { get; }

    /// <summary>Ports 0x20/0x21 and 0xA0/0xA1.</summary>
    public PicStub Pic { get; }

    /// <summary>Port 0x604.</summary>
    public PowerOff PowerOff { get; }

    /// <summary>Ports 0x600–0x603: PM1_STS and PM1_EN; its SCI drives I/O APIC pin 9.</summary>
    public AcpiPm1Event Pm1Event { get; }

    /// <summary>
    /// Ports 0x608–0x60B: the ACPI PM timer, on the host's monotonic clock until the accelerator gives it the VM's
    /// (the interpreter: the boot vCPU's virtual time).
    /// </summary>
    public AcpiPmTimer PmTimer { get; }

    /// <summary>The local APICs, one per vCPU, and the bus between them.</summary>
    public InterruptRouter Interrupts { get; }

    /// <summary>vCPU 0's local APIC (registered on the bus; the interpreter reaches each vCPU's own APIC directly).</summary>
    public LocalApic LocalApic { get; }

    /// <summary>Creates the standard devices and registers them on <paramref name="bus"/>.</summary>
    /// <param name="bus">The VM's bus.</param>
    /// <param name="console">The guest console.</param>
    /// <param name="stop">Where stop requests go.</param>
    /// <param name="cpuCount">CPUs, as fw_cfg reports them (1–65535).</param>
    /// <param name="ramSize">Guest RAM in bytes, as fw_cfg reports it.</param>
    /// <param name="serialInput">Text queued on COM1's receive side, or null.</param>
    /// <returns>The attached set.</returns>
    /// <exception cref="OverlappingDeviceException">The bus already has a device at one of the standard addresses.</exception>
    public static PcDevices Attach(DeviceBus bus, GuestConsole console, VmStopSignal stop, int cpuCount, ulong ramSize, string? serialInput = null)
    {
        ArgumentNullException.ThrowIfNull(bus);
        ArgumentNullException.ThrowIfNull(console);
        ArgumentNullException.ThrowIfNull(stop);
        var set = new PcDevices(bus, console, stop, cpuCount, ramSize, serialInput);
        set.Pic.Attach(bus);
        set.DebugConsole.Attach(bus);
        set.DebugExit.Attach(bus);
        set.Uart.Attach(bus);
        set.FwCfg.Attach(bus);
        set.PowerOff.Attach(bus);
        set.Pm1Event.Attach(bus);
        set.PmTimer.Attach(bus);
        set.LocalApic.Attach(bus);
        set.IoApic.Attach(bus);
        set.Pit.Attach(bus);
        set.Rtc.Attach(bus);
        set.Keyboard.Attach(bus);
        return set;
    }
}
