namespace Hypervisor.Notifier;

/// <summary>
/// A subscriber or a caller broke the notifier contract: for example a start that failed on a blockable
/// range, an end with no matching start, or a subscriber that implements both start/end and
/// secondary-TLB invalidation.
/// </summary>
/// <remarks>A broken contract is a bug in the subscriber or the caller, not bad input: this exception does not carry <see cref="IInputError"/>.</remarks>
public sealed class NotifierContractException : InvalidOperationException
{
    /// <summary>Creates the exception with a message that names the rule broken.</summary>
    public NotifierContractException(string message)
        : base(message)
    {
    }
}
