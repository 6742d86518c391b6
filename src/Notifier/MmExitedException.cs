namespace Hypervisor.Notifier;

/// <summary>An operation that needs a live mm was attempted after the mm began to exit.</summary>
/// <remarks>Using an mm after its exit began is a life-cycle bug in the caller (or a race it must handle), not bad input: this exception does not carry <see cref="IInputError"/>.</remarks>
public sealed class MmExitedException : InvalidOperationException
{
    /// <summary>Creates the exception for <paramref name="mmId"/> and the refused operation.</summary>
    public MmExitedException(int mmId, string operation)
        : base($"mm {mmId} has exited: {operation} is refused once exit has started")
    {
        MmId = mmId;
    }

    /// <summary>The exited mm.</summary>
    public int MmId { get; }
}
