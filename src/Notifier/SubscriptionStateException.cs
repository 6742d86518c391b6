namespace Hypervisor.Notifier;

/// <summary>A subscription was used in a state that does not allow it (unregistered twice, put below zero, …).</summary>
public sealed class SubscriptionStateException : InvalidOperationException
{
    /// <summary>Creates the exception with a message naming the subscription and the rule.</summary>
    public SubscriptionStateException(string message)
        : base(message)
    {
    }
}
