namespace Hypervisor.HostMm.Vmas;

/// <summary>
/// A <see cref="Vmas.Protection"/> value broke a rule: it has undefined bits, or it grants Write or Execute
/// without Read, which x86 page tables cannot express.
/// </summary>
public sealed class InvalidProtectionException : ArgumentException
{
    /// <summary>Creates the exception for <paramref name="protection"/> with a message that names it and the rule.</summary>
    public InvalidProtectionException(Protection protection, string message, string? paramName = null)
        : base(message, paramName) => Protection = protection;

    /// <summary>The rejected value.</summary>
    public Protection Protection { get; }
}
