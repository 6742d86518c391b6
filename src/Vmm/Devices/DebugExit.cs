namespace Hypervisor.Vmm.Devices;

/// <summary>
/// QEMU's isa-debug-exit at port 0xF4 (iosize 1): a write of value v stops the VM with exit status
/// <c>(v &lt;&lt; 1) | 1</c>, so a guest can report success or failure to the host (status 1 is v = 0). Reads return 0.
/// A wider OUT reaches the device as its low byte only, as in QEMU, because the bus splits accesses at the port's end.
/// </summary>
public sealed class DebugExit : IPortDevice
{
    /// <summary>The port.</summary>
    public const ushort Port = 0xF4;

    private readonly VmStopSignal _stop;

    /// <summary>Creates the device posting to <paramref name="stop"/>.</summary>
    /// <param name="stop">Where the stop request goes.</param>
    public DebugExit(VmStopSignal stop)
    {
        ArgumentNullException.ThrowIfNull(stop);
        _stop = stop;
    }

    /// <inheritdoc />
    public string Name => "isa-debug-exit";

    /// <summary>Registers the device at <see cref="Port"/>.</summary>
    /// <param name="bus">The bus.</param>
    public void Attach(DeviceBus bus)
    {
        ArgumentNullException.ThrowIfNull(bus);
        bus.RegisterPorts(Port, 1, this);
    }

    /// <inheritdoc />
    public uint ReadPort(ushort port, int size) => 0;

    /// <inheritdoc />
    public void WritePort(ushort port, int size, uint value) => _stop.Post(VmStop.Shutdown(value, Name));
}
