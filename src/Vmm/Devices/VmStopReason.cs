namespace Hypervisor.Vmm.Devices;

/// <summary>Why a device asked the VM to stop.</summary>
public enum VmStopReason
{
    /// <summary>The guest wrote to the debug-exit port (QEMU's isa-debug-exit); the exit status is <c>(value &lt;&lt; 1) | 1</c>.</summary>
    Shutdown,

    /// <summary>The guest entered ACPI S5 (soft off) through PM1a control; the exit status is 0.</summary>
    PowerOff,

    /// <summary>
    /// The guest reset the machine (the i8042's CPU reset line): the VM stops, as QEMU with <c>-no-reboot</c> does, with
    /// exit status 0.
    /// </summary>
    Reset,
}
