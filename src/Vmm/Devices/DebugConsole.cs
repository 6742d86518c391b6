namespace Hypervisor.Vmm.Devices;

/// <summary>
/// QEMU's debugcon (Bochs' port E9 hack): every byte written to port 0xE9 goes to the guest console; reading the
/// port returns 0xE9, which guests use to detect the device.
/// </summary>
public sealed class DebugConsole : IPortDevice
{
    /// <summary>The port.</summary>
    public const ushort Port = 0xE9;

    /// <summary>What a read returns: the port number, QEMU's readback value.</summary>
    public const byte ReadbackValue = 0xE9;

    private readonly GuestConsole _console;

    /// <summary>Creates the device writing to <paramref name="console"/>.</summary>
    /// <param name="console">The guest console.</param>
    public DebugConsole(GuestConsole console)
    {
        ArgumentNullException.ThrowIfNull(console);
        _console = console;
    }

    /// <inheritdoc />
    public string Name => "debugcon";

    /// <summary>Registers the device at <see cref="Port"/>.</summary>
    /// <param name="bus">The bus.</param>
    public void Attach(DeviceBus bus)
    {
        ArgumentNullException.ThrowIfNull(bus);
        bus.RegisterPorts(Port, 1, this);
    }

    /// <inheritdoc />
    public uint ReadPort(ushort port, int size) => ReadbackValue;

    /// <inheritdoc />
    /// <remarks>The bus only sends 1-byte accesses here (the device owns one port); each is one console byte.</remarks>
    public void WritePort(ushort port, int size, uint value)
    {
        for (var i = 0; i < size; i++)
        {
            _console.Write((byte)(value >> (8 * i)));
        }
    }
}
