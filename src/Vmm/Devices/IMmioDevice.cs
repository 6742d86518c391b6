namespace Hypervisor.Vmm.Devices;

/// <summary>
/// A device reached through memory-mapped I/O: guest-physical accesses inside its registered range. Offsets are
/// relative to the start of that range, and the bus never hands a device bytes outside it.
/// </summary>
public interface IMmioDevice : IDevice
{
    /// <summary>Fills <paramref name="data"/> with the device's bytes at <paramref name="offset"/> (little-endian registers).</summary>
    /// <param name="offset">Offset of the first byte from the start of the registered range.</param>
    /// <param name="data">The destination; its length is the access size.</param>
    void Read(ulong offset, Span<byte> data);

    /// <summary>Stores <paramref name="data"/> into the device at <paramref name="offset"/>.</summary>
    /// <param name="offset">Offset of the first byte from the start of the registered range.</param>
    /// <param name="data">The bytes written; its length is the access size.</param>
    void Write(ulong offset, ReadOnlySpan<byte> data);
}
