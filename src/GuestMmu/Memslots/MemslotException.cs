namespace Hypervisor.GuestMmu.Memslots;

/// <summary>
/// A memslot request or conversion broke a rule (KVM answers these with <c>-EINVAL</c> or, for an overlap,
/// <c>-EEXIST</c>). The message names the offending value and the rule; <see cref="Error"/> says which rule.
/// </summary>
public sealed class MemslotException : ArgumentException, IInputError
{
    /// <summary>Creates the exception.</summary>
    /// <param name="error">The rule that was broken.</param>
    /// <param name="slotId">The slot the request or conversion was about.</param>
    /// <param name="message">A message that names the value and the rule.</param>
    /// <param name="paramName">The argument that carried the bad value.</param>
    public MemslotException(MemslotError error, int slotId, string message, string? paramName = null)
        : base(message, paramName)
    {
        Error = error;
        SlotId = slotId;
    }

    /// <summary>The rule that was broken.</summary>
    public MemslotError Error { get; }

    /// <summary>The slot id the request or conversion was about.</summary>
    public int SlotId { get; }

    /// <inheritdoc />
    Enum IInputError.Rule => Error;
}
