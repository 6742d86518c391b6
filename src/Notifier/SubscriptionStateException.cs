namespace Hypervisor.Notifier;

/// <summary>A subscription was used in a state that does not allow it (unregistered twice, put below zero, …).</summary>
/// <remarks>A subscription handle used against its life cycle is a bug in the caller, not bad input: this exception does not carry <see cref="IInputError"/>.</remarks>
public sealed class SubscriptionStateException : InvalidOperationException
{
    /// <summary>Creates the exception with a message naming the subscription and the rule.</summary>
    public SubscriptionStateException(string message)
        : base(message)
    {
    }
}
