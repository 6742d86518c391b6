namespace Hypervisor.HostMm.Vmas;

/// <summary>
/// A <see cref="Vmas.Protection"/> value broke a rule: it has undefined bits, or it grants Write or Execute
/// without Read, which x86 page tables cannot express. Bad input: <see cref="Rule"/> says which rule.
/// </summary>
public sealed class InvalidProtectionException : ArgumentException, IInputError
{
    /// <summary>Creates the exception for <paramref name="protection"/> with a message that names it and the rule.</summary>
    /// <param name="rule"><see cref="HostMmRule.UndefinedProtectionBits"/> or <see cref="HostMmRule.WriteOrExecuteWithoutRead"/>.</param>
    /// <param name="protection">The rejected value.</param>
    /// <param name="message">A message that names the value and the rule.</param>
    /// <param name="paramName">The argument that carried the value.</param>
    public InvalidProtectionException(HostMmRule rule, Protection protection, string message, string? paramName = null)
        : base(message, paramName)
    {
        Rule = rule;
        Protection = protection;
    }

    /// <summary>The rejected value.</summary>
    public Protection Protection { get; }

    /// <summary>The rule that was broken.</summary>
    public HostMmRule Rule { get; }

    /// <inheritdoc />
    Enum IInputError.Rule => Rule;
}
