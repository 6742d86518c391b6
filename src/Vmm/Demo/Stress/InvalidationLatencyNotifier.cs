using System.Diagnostics;
using Hypervisor.Notifier;
using Hypervisor.Vmm.Tracing;

namespace Hypervisor.Vmm.Demo.Stress;

/// <summary>
/// A notifier subscriber that only measures: the time from each invalidate_range_start to its end, on the thread that
/// runs the host operation (start and end of one operation come from one thread, nested at most a few deep). The
/// longest is the worst window in which the secondary MMU's faults on the range had to retry or wait.
/// </summary>
internal sealed class InvalidationLatencyNotifier : IMmuNotifier
{
    private long _count;
    private long _totalTicks;
    private long _maxTicks;

    /// <summary>Invalidations measured (start to end).</summary>
    public long Count => Interlocked.Read(ref _count);

    /// <summary>The longest start-to-end window.</summary>
    public TimeSpan Longest => Stopwatch.GetElapsedTime(0, Interlocked.Read(ref _maxTicks));

    /// <summary>The mean start-to-end window.</summary>
    public TimeSpan Mean => Count == 0 ? TimeSpan.Zero : Stopwatch.GetElapsedTime(0, Interlocked.Read(ref _totalTicks) / Count);

    /// <inheritdoc />
    public bool InvalidateRangeStart(in NotifierRange range)
    {
        InvalidationStartStack<InvalidationLatencyNotifier>.Push();
        return true;
    }

    /// <inheritdoc />
    public void InvalidateRangeEnd(in NotifierRange range)
    {
        if (!InvalidationStartStack<InvalidationLatencyNotifier>.TryPop(out var start))
        {
            return;
        }

        var ticks = Stopwatch.GetTimestamp() - start;
        Interlocked.Increment(ref _count);
        Interlocked.Add(ref _totalTicks, ticks);
        var max = Interlocked.Read(ref _maxTicks);
        while (ticks > max)
        {
            var seen = Interlocked.CompareExchange(ref _maxTicks, ticks, max);
            if (seen == max)
            {
                break;
            }

            max = seen;
        }
    }
}
