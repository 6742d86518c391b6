namespace Hypervisor.Vmm.Devices;

/// <summary>
/// A device reached through x86 port I/O (IN/OUT). The bus only hands a device accesses whose every byte lies in
/// ports the device registered; an access that straddles devices is split into byte accesses first.
/// </summary>
public interface IPortDevice : IDevice
{
    /// <summary>Reads <paramref name="size"/> bytes (1, 2 or 4) starting at <paramref name="port"/>, little-endian.</summary>
    /// <param name="port">The first port of the access.</param>
    /// <param name="size">The access size in bytes: 1, 2 or 4.</param>
    /// <returns>The value, zero-extended to 32 bits.</returns>
    uint ReadPort(ushort port, int size);

    /// <summary>Writes the low <paramref name="size"/> bytes (1, 2 or 4) of <paramref name="value"/> starting at <paramref name="port"/>.</summary>
    /// <param name="port">The first port of the access.</param>
    /// <param name="size">The access size in bytes: 1, 2 or 4.</param>
    /// <param name="value">The value; bits above the access size are zero.</param>
    void WritePort(ushort port, int size, uint value);
}
