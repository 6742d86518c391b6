namespace Hypervisor.Notifier;

/// <summary>
/// A subscriber or a caller broke the notifier contract: for example a start that failed on a blockable
/// range, an end with no matching start, or a subscriber that implements both start/end and
/// secondary-TLB invalidation.
/// </summary>
public sealed class NotifierContractException : InvalidOperationException
{
    /// <summary>Creates the exception with a message that names the rule broken.</summary>
    public NotifierContractException(string message)
        : base(message)
    {
    }
}
