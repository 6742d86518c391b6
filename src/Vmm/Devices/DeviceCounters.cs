namespace Hypervisor.Vmm.Devices;

/// <summary>A snapshot of the accesses the bus dispatched to one device (or to no device, for unknown addresses).</summary>
/// <param name="PortReads">Port reads (IN) dispatched.</param>
/// <param name="PortWrites">Port writes (OUT) dispatched.</param>
/// <param name="MmioReads">MMIO reads dispatched.</param>
/// <param name="MmioWrites">MMIO writes dispatched.</param>
public readonly record struct DeviceCounters(long PortReads, long PortWrites, long MmioReads, long MmioWrites)
{
    /// <summary>All accesses of every kind.</summary>
    public long Total => PortReads + PortWrites + MmioReads + MmioWrites;
}
