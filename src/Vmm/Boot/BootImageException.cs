using Hypervisor.Notifier;

namespace Hypervisor.Vmm.Boot;

/// <summary>
/// A guest image or a boot request is malformed or does not fit the machine. The message names the value and
/// the rule; <see cref="Rule"/> says which rule, for callers and tests. It is an <see cref="ArgumentException"/>
/// so that the CLI reports it as bad input on one line.
/// </summary>
public sealed class BootImageException : ArgumentException, IInputError
{
    /// <summary>Creates the exception.</summary>
    /// <param name="rule">The rule that was broken.</param>
    /// <param name="message">The offending value and the rule, in words.</param>
    public BootImageException(BootImageRule rule, string message)
        : base(message)
    {
        Rule = rule;
    }

    /// <summary>The rule that was broken.</summary>
    public BootImageRule Rule { get; }

    /// <inheritdoc />
    Enum IInputError.Rule => Rule;
}
