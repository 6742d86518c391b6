using Hypervisor.Notifier;

namespace Hypervisor.Vmm.Machine;

/// <summary>
/// A <see cref="VmOptions"/> value breaks its rule. The message names the value and the rule; <see cref="Rule"/> says
/// which. Options are the VM's input, so this is an <see cref="IInputError"/>: the command line reports it as a bad
/// option (exit 2) on one line.
/// </summary>
public sealed class VmOptionsException : ArgumentException, IInputError
{
    /// <summary>Creates the exception.</summary>
    /// <param name="rule">The rule that was broken.</param>
    /// <param name="option">The option's name (a <see cref="VmOptions"/> property).</param>
    /// <param name="value">The value given.</param>
    /// <param name="message">The value and the rule, in words.</param>
    public VmOptionsException(VmOptionRule rule, string option, object? value, string message)
        : base(message, option)
    {
        Rule = rule;
        Value = value;
    }

    /// <summary>The value given.</summary>
    public object? Value { get; }

    /// <summary>The rule that was broken.</summary>
    public VmOptionRule Rule { get; }

    /// <inheritdoc />
    Enum IInputError.Rule => Rule;
}
