using System.Diagnostics;
using Hypervisor.Notifier;

namespace Hypervisor.Vmm.Demo.Stress;

/// <summary>
/// A notifier subscriber that only measures: the time from each invalidate_range_start to its end, on the thread that
/// runs the host operation (start and end of one operation come from one thread, nested at most a few deep). The
/// longest is the worst window in which the secondary MMU's faults on the range had to retry or wait.
/// </summary>
internal sealed class InvalidationLatencyNotifier : IMmuNotifier
{
    private const int MaxDepth = 8;

    [ThreadStatic]
    private static long[]? t_starts;

    [ThreadStatic]
    private static int t_depth;

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
        var starts = t_starts ??= new long[MaxDepth];
        if (t_depth < MaxDepth)
        {
            starts[t_depth] = Stopwatch.GetTimestamp();
        }

        t_depth++;
        return true;
    }

    /// <inheritdoc />
    public void InvalidateRangeEnd(in NotifierRange range)
    {
        if (t_depth == 0)
        {
            return;
        }

        t_depth--;
        if (t_depth >= MaxDepth || t_starts is null)
        {
            return;
        }

        var ticks = Stopwatch.GetTimestamp() - t_starts[t_depth];
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
