using Hypervisor.Notifier;

namespace Hypervisor.HostMm.Tests.Processes;

/// <summary>
/// A subscriber with only a start (one that can fail must not implement end) that refuses every range
/// while <see cref="Refuse"/> is set, blockable or not.
/// </summary>
internal sealed class RefusingStartNotifier : IMmuNotifier
{
    private int _starts;

    public bool Refuse { get; set; } = true;

    public int Starts => Volatile.Read(ref _starts);

    public bool InvalidateRangeStart(in NotifierRange range)
    {
        Interlocked.Increment(ref _starts);
        return !Refuse;
    }
}
