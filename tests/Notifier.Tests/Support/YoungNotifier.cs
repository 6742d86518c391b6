namespace Hypervisor.Notifier.Tests.Support;

/// <summary>A subscriber with only the aging ops, answering a fixed value and counting calls.</summary>
public sealed class YoungNotifier(bool answer) : IMmuNotifier
{
    private int _calls;

    public int Calls => Volatile.Read(ref _calls);

    public bool ClearFlushYoung(IMm mm, Hva start, Hva end)
    {
        Interlocked.Increment(ref _calls);
        return answer;
    }

    public bool ClearYoung(IMm mm, Hva start, Hva end)
    {
        Interlocked.Increment(ref _calls);
        return answer;
    }

    public bool TestYoung(IMm mm, Hva address)
    {
        Interlocked.Increment(ref _calls);
        return answer;
    }
}
