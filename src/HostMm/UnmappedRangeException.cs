namespace Hypervisor.HostMm;

/// <summary>
/// An operation that needs every page of a range mapped (mprotect, mremap, madvise) found a hole. Bad input:
/// <see cref="Rule"/> says which rule.
/// </summary>
public sealed class UnmappedRangeException : ArgumentException, IInputError
{
    /// <summary>Creates the exception naming the range and the operation.</summary>
    /// <param name="rule"><see cref="HostMmRule.RangeNotFullyMapped"/> or <see cref="HostMmRule.RangeNotInOneMapping"/>.</param>
    /// <param name="mmId">The process.</param>
    /// <param name="start">Inclusive start of the range.</param>
    /// <param name="end">Exclusive end of the range.</param>
    /// <param name="operation">The refused operation, with what it needs.</param>
    public UnmappedRangeException(HostMmRule rule, int mmId, Hva start, Hva end, string operation)
        : base($"mm {mmId}: [{start}, {end}) is not fully mapped: {operation} needs every page of the range mapped") => Rule = rule;

    /// <summary>The rule that was broken.</summary>
    public HostMmRule Rule { get; }

    /// <inheritdoc />
    Enum IInputError.Rule => Rule;
}
