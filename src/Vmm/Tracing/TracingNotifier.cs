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
/// each thread keeps its open starts on a small stack (<see cref="InvalidationStartStack{TOwner}"/>); a start beyond its
/// depth is not timed (its end records nothing).
/// </remarks>
public sealed class TracingNotifier : IMmuNotifier
{
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
        InvalidationStartStack<TracingNotifier>.Push();
        return true;
    }

    /// <inheritdoc />
    public void InvalidateRangeEnd(in NotifierRange range)
    {
        if (InvalidationStartStack<TracingNotifier>.TryPop(out var start))
        {
            _recorder.Complete(
                TraceEventTypes.MmuNotifierInvalidateRange,
                _pid,
                start,
                (long)range.Start.Value,
                (long)range.End.Value,
                _chain.SubscriberCount - 1,
                EnumText<NotifierEvent>.Of(range.Event));
        }
    }
}
