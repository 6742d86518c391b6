using Hypervisor.Notifier;

namespace Hypervisor.HostMm.Tests.Thp;

/// <summary>
/// A subscriber that, inside the first invalidation of exactly <c>[start, end)</c>, runs <paramref name="race"/> on
/// another thread and waits for it: a deterministic interleaving of another thread's operation between an operation's
/// notifier start and its PTE changes. Records every range it is told about.
/// </summary>
internal sealed class RaceOnStartNotifier(Hva start, Hva end, Action race) : IMmuNotifier
{
    private readonly List<(Hva Start, Hva End, NotifierEvent Event)> _ranges = [];
    private int _ran;

    /// <summary>Whether the race ran.</summary>
    public bool Ran => Volatile.Read(ref _ran) != 0;

    /// <summary>The ranges started so far, in order.</summary>
    public IReadOnlyList<(Hva Start, Hva End, NotifierEvent Event)> Ranges
    {
        get
        {
            lock (_ranges)
            {
                return [.. _ranges];
            }
        }
    }

    public bool InvalidateRangeStart(in NotifierRange range)
    {
        lock (_ranges)
        {
            _ranges.Add((range.Start, range.End, range.Event));
        }

        if (range.Start == start && range.End == end && Interlocked.Exchange(ref _ran, 1) == 0)
        {
            Exception? failure = null;
            var thread = new Thread(() =>
            {
                try
                {
                    race();
                }
                catch (Exception exception)
                {
                    failure = exception;
                }
            });
            thread.Start();
            thread.Join();
            if (failure is not null)
            {
                throw new InvalidOperationException("the racing operation failed", failure);
            }
        }

        return true;
    }
}
