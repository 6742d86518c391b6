using Hypervisor.HostMm.Swap;

namespace Hypervisor.HostMm;

/// <summary>
/// A host helper's access (<see cref="Mm.Read"/>, <see cref="Mm.Write"/>) needed a page whose swap read failed or did
/// not match its checksum (Linux's SIGBUS on a swap-in error). The data was not returned; the swap slot keeps its
/// contents, so the access may be retried. Not bad input: the device failed.
/// </summary>
public sealed class MemoryFailureException : Exception
{
    /// <summary>Creates the exception for <paramref name="address"/> of mm <paramref name="mmId"/>.</summary>
    public MemoryFailureException(int mmId, Hva address, FaultFailure failure)
        : base($"mm {mmId}: memory failure at {address}: reading swap slot {failure.SwapSlot} gave {failure.Cause}; no data was returned")
    {
        MmId = mmId;
        Address = address;
        Failure = failure;
    }

    /// <summary>The mm.</summary>
    public int MmId { get; }

    /// <summary>The address whose page could not be read back.</summary>
    public Hva Address { get; }

    /// <summary>The slot and the cause.</summary>
    public FaultFailure Failure { get; }

    /// <summary>The device's status.</summary>
    public SwapIoStatus Cause => Failure.Cause;
}
