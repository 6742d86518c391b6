using Hypervisor.Notifier;

namespace Hypervisor.Bench.Notifier;

/// <summary>
/// The cheapest subscriber that still does what a real one must: count invalidations in progress on
/// start and uncount on end (KVM's in-progress counter without the zap).
/// </summary>
internal sealed class CountingNotifier : IMmuNotifier
{
    private long _inProgress;
    private long _sequence;

    public long Sequence => _sequence;

    public long InProgress => _inProgress;

    public bool InvalidateRangeStart(in NotifierRange range)
    {
        _inProgress++;
        return true;
    }

    public void InvalidateRangeEnd(in NotifierRange range)
    {
        _sequence++;
        _inProgress--;
    }
}
