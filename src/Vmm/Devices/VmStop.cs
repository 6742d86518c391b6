namespace Hypervisor.Vmm.Devices;

/// <summary>A device's request to stop the VM: the reason, the process exit status it implies, and who asked.</summary>
/// <param name="Reason">Why the VM stops.</param>
/// <param name="ExitStatus">The exit status <c>hv run</c> should return (QEMU's, for the same guest action).</param>
/// <param name="Device">The name of the device that made the request.</param>
public sealed record VmStop(VmStopReason Reason, int ExitStatus, string Device)
{
    /// <summary>The stop QEMU's isa-debug-exit makes for a written value: status <c>(value &lt;&lt; 1) | 1</c>.</summary>
    /// <param name="value">The value the guest wrote, already truncated to the port's width.</param>
    /// <param name="device">The device name.</param>
    /// <returns>A <see cref="VmStopReason.Shutdown"/> stop.</returns>
    public static VmStop Shutdown(uint value, string device) =>
        new(VmStopReason.Shutdown, unchecked((int)((value << 1) | 1)), device);

    /// <summary>An ACPI soft power-off, exit status 0.</summary>
    /// <param name="device">The device name.</param>
    /// <returns>A <see cref="VmStopReason.PowerOff"/> stop.</returns>
    public static VmStop PowerOff(string device) => new(VmStopReason.PowerOff, 0, device);

    /// <summary>A guest reset, which stops the VM as QEMU's <c>-no-reboot</c> does: exit status 0.</summary>
    /// <param name="device">The device name.</param>
    /// <returns>A <see cref="VmStopReason.Reset"/> stop.</returns>
    public static VmStop Reset(string device) => new(VmStopReason.Reset, 0, device);

    /// <inheritdoc />
    public override string ToString() => $"{Reason} (exit status {ExitStatus}) requested by {Device}";
}
