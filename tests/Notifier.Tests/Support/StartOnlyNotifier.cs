namespace Hypervisor.Notifier.Tests.Support;

/// <summary>A subscriber with only a start, which can be told to refuse non-blockable ranges.</summary>
public sealed class StartOnlyNotifier : IMmuNotifier
{
    private int _starts;

    public bool RefuseNonBlockable { get; set; }

    public int Starts => Volatile.Read(ref _starts);

    public bool InvalidateRangeStart(in NotifierRange range)
    {
        Interlocked.Increment(ref _starts);
        return !(RefuseNonBlockable && !range.IsBlockable);
    }
}
