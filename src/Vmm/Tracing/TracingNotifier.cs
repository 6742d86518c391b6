using System.Diagnostics;
using Hypervisor.Notifier;

namespace Hypervisor.Vmm.Tracing;

/// <summary>
/// A passive MMU-notifier subscriber on a VM's host process that records each invalidation as one
/// <c>mmu_notifier_invalidate_range</c> span, from its start callback to the matching end, on the invalidating
/// thread. It keeps no secondary mappings, never fails a start, and is registered ahead of the secondary MMU so its
/// span encloses the MMU's zap.
/// </summary>
/// <remarks>
/// Start and end of one range run on the same thread and nest (an invalidation inside another is ended first), so
/// each thread keeps its open starts on a small stack; a start beyond its depth is not timed (its end records nothing).
/// </remarks>
public sealed class TracingNotifier : IMmuNotifier
{
    private const int MaxDepth = 8;

    [ThreadStatic]
    private static long[]? t_starts;

    [ThreadStatic]
    private static int t_depth;

    private readonly TraceRecorder _recorder;
    private readonly int _pid;
    private readonly MmuNotifierChain _chain;

    /// <summary>Creates the subscriber; <see cref="Register"/> puts it on <paramref name="chain"/>.</summary>
    public TracingNotifier(TraceRecorder recorder, int pid, MmuNotifierChain chain)
    {
        ArgumentNullException.ThrowIfNull(recorder);
        ArgumentNullException.ThrowIfNull(chain);
        _recorder = recorder;
        _pid = pid;
        _chain = chain;
    }

    /// <summary>Subscribes to the chain.</summary>
    public MmuNotifierSubscription Register() => _chain.Register(this);

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
        if (t_depth < MaxDepth && t_starts is { } starts)
        {
            _recorder.Complete(
                TraceEventTypes.MmuNotifierInvalidateRange,
                _pid,
                starts[t_depth],
                (long)range.Start.Value,
                (long)range.End.Value,
                _chain.SubscriberCount - 1,
                EnumText<NotifierEvent>.Of(range.Event));
        }
    }
}
