namespace Hypervisor.HostMm;

/// <summary>
/// No free range of the user address space is large enough for a mapping, or a mapping cannot grow where it
/// is. Bad input: the caller asked for more address space than the rule allows; <see cref="Rule"/> says which rule.
/// </summary>
public sealed class AddressSpaceExhaustedException : InvalidOperationException, IInputError
{
    /// <summary>Creates the exception naming the size wanted and the operation.</summary>
    /// <param name="rule"><see cref="HostMmRule.NoFreeAddressRange"/> or <see cref="HostMmRule.CannotGrowInPlace"/>.</param>
    /// <param name="mmId">The process.</param>
    /// <param name="bytes">The size of address space wanted.</param>
    /// <param name="operation">The refused operation.</param>
    public AddressSpaceExhaustedException(HostMmRule rule, int mmId, ulong bytes, string operation)
        : base($"mm {mmId}: {operation} needs {bytes:#,0} free bytes of address space and found no such range") => Rule = rule;

    /// <summary>The rule that was broken.</summary>
    public HostMmRule Rule { get; }

    /// <inheritdoc />
    Enum IInputError.Rule => Rule;
}
