namespace Hypervisor.HostMm;

/// <summary>An operation that needs every page of a range mapped (mprotect, mremap, madvise) found a hole.</summary>
public sealed class UnmappedRangeException : ArgumentException
{
    /// <summary>Creates the exception naming the range and the operation.</summary>
    public UnmappedRangeException(int mmId, Hva start, Hva end, string operation)
        : base($"mm {mmId}: [{start}, {end}) is not fully mapped: {operation} needs every page of the range mapped")
    {
    }
}
