using Hypervisor.Notifier;
using Hypervisor.Notifier.Intervals;

namespace Hypervisor.Bench.Notifier;

/// <summary>An interval subscriber that does only what the protocol requires: record the sequence.</summary>
internal sealed class SequenceOnlyInterval : IIntervalNotifier
{
    public bool Invalidate(IntervalSubscription subscription, in NotifierRange range, ulong currentSequence)
    {
        subscription.SetSequence(currentSequence);
        return true;
    }
}
