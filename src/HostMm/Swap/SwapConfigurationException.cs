namespace Hypervisor.HostMm.Swap;

/// <summary>
/// A swap configuration value broke a rule: a size of 0, a size that is not a page multiple or is too small or too
/// large, a path where no swap file can be created, not enough disk space, a bad readahead or fault-injection
/// setting. The message names the value and the rule; <see cref="Rule"/> says which rule. Bad input, not a bug.
/// </summary>
public sealed class SwapConfigurationException : ArgumentException, IInputError
{
    /// <summary>Creates the exception.</summary>
    /// <param name="rule">The rule that was broken.</param>
    /// <param name="message">A message that names the value and the rule.</param>
    /// <param name="paramName">The option or argument that carried the bad value.</param>
    /// <param name="innerException">The OS error behind a path or disk-space failure, if any.</param>
    public SwapConfigurationException(SwapRule rule, string message, string? paramName = null, Exception? innerException = null)
        : base(message, paramName, innerException) => Rule = rule;

    /// <summary>The rule that was broken.</summary>
    public SwapRule Rule { get; }

    /// <inheritdoc />
    Enum IInputError.Rule => Rule;
}
