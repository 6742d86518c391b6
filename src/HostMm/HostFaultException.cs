namespace Hypervisor.HostMm;

/// <summary>
/// An access the host's own helpers (<see cref="Mm.Read"/>, <see cref="Mm.Write"/>) made could not be
/// resolved: the address is unmapped or the mapping forbids the access (Linux's <c>EFAULT</c>). Bad input:
/// the caller's address breaks <see cref="Rule"/>.
/// </summary>
public sealed class HostFaultException : InvalidOperationException, IInputError
{
    /// <summary>Creates the exception for <paramref name="address"/> of mm <paramref name="mmId"/>.</summary>
    public HostFaultException(int mmId, Hva address, FaultAccess access, FaultResult result)
        : base($"mm {mmId}: {access.ToString().ToLowerInvariant()} at {address} failed: " + (result == FaultResult.SegmentationFault
            ? "no mapping covers the address"
            : "the mapping does not allow this access"))
    {
        MmId = mmId;
        Address = address;
        Access = access;
        Result = result;
    }

    /// <summary>The mm.</summary>
    public int MmId { get; }

    /// <summary>The faulting address.</summary>
    public Hva Address { get; }

    /// <summary>The access attempted.</summary>
    public FaultAccess Access { get; }

    /// <summary>Why it failed.</summary>
    public FaultResult Result { get; }

    /// <summary>The rule that was broken: <see cref="HostMmRule.AddressNotMapped"/> for an unmapped address, else <see cref="HostMmRule.AccessNotPermitted"/>.</summary>
    public HostMmRule Rule => Result == FaultResult.SegmentationFault ? HostMmRule.AddressNotMapped : HostMmRule.AccessNotPermitted;

    /// <inheritdoc />
    Enum IInputError.Rule => Rule;
}
