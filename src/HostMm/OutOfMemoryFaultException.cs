namespace Hypervisor.HostMm;

/// <summary>
/// A host helper's access (<see cref="Mm.Read"/>, <see cref="Mm.Write"/>) needed a new page and none could be found
/// even after reclaim: the process's cgroup is at its limit, or host RAM is full, with nothing left to swap out
/// (Linux's VM_FAULT_OOM). Not bad input: the host ran out of memory.
/// </summary>
public sealed class OutOfMemoryFaultException : Exception
{
    /// <summary>Creates the exception for <paramref name="address"/> of mm <paramref name="mmId"/>.</summary>
    public OutOfMemoryFaultException(int mmId, Hva address, string detail)
        : base($"mm {mmId}: out of memory at {address}: {detail}")
    {
        MmId = mmId;
        Address = address;
    }

    /// <summary>The mm.</summary>
    public int MmId { get; }

    /// <summary>The address that needed a page.</summary>
    public Hva Address { get; }
}
