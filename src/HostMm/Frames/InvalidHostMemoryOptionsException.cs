namespace Hypervisor.HostMm.Frames;

/// <summary>
/// A <see cref="HostMemoryOptions"/> value broke a rule (size, node count, divisibility). Bad input:
/// <see cref="Rule"/> says which rule.
/// </summary>
public sealed class InvalidHostMemoryOptionsException : ArgumentException, IInputError
{
    /// <summary>Creates the exception with a message that names the value and the rule.</summary>
    /// <param name="rule">The rule that was broken.</param>
    /// <param name="message">A message that names the value and the rule.</param>
    /// <param name="paramName">The option that carried the value.</param>
    public InvalidHostMemoryOptionsException(HostMmRule rule, string message, string paramName)
        : base(message, paramName) => Rule = rule;

    /// <summary>The rule that was broken.</summary>
    public HostMmRule Rule { get; }

    /// <inheritdoc />
    Enum IInputError.Rule => Rule;
}
