namespace Hypervisor.HostMm.PageTables;

/// <summary>
/// A host PTE is not what an operation requires: the wrong kind (a swap slot asked of a migration entry),
/// or a non-present value that is no valid encoding of <see cref="HostPteEncoding"/>.
/// </summary>
/// <remarks>PTE values come from the host's own page tables, so a corrupt entry or one of the wrong kind is a bug, not bad input: this exception does not carry <see cref="IInputError"/>.</remarks>
public sealed class InvalidHostPteException : ArgumentException
{
    /// <summary>Creates the exception for <paramref name="pte"/> with a message that names the value and the rule.</summary>
    public InvalidHostPteException(HostPte pte, string message, string? paramName = "pte")
        : base(message, paramName)
    {
        Pte = pte;
    }

    /// <summary>The offending entry.</summary>
    public HostPte Pte { get; }
}
