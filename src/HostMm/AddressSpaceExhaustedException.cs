namespace Hypervisor.HostMm;

/// <summary>No free range of the user address space is large enough for a mapping.</summary>
public sealed class AddressSpaceExhaustedException : InvalidOperationException
{
    /// <summary>Creates the exception naming the size wanted and the operation.</summary>
    public AddressSpaceExhaustedException(int mmId, ulong bytes, string operation)
        : base($"mm {mmId}: {operation} needs {bytes:#,0} free bytes of address space and found no such range")
    {
    }
}
