using Hypervisor.Notifier.Intervals;

namespace Hypervisor.Notifier.Tracing;

/// <summary>
/// A subscriber that records every callback it receives, with a global order and the calling thread, and
/// lets the host and tests add their own steps (PTE changes, TLB flushes, frame frees, marks) to the same
/// timeline. Tests assert the notifier ordering table against <see cref="Events"/>. It also serves as an
/// interval subscriber. Thread-safe.
/// </summary>
/// <remarks>
/// It implements every op except <see cref="IMmuNotifier.InvalidateSecondaryTlbs"/>, which the contract
/// forbids beside start/end; <see cref="SecondaryTlbRecorder"/> records those into the same timeline.
/// Aging answers come from <see cref="YoungAnswer"/>.
/// </remarks>
public sealed class NotifierEventRecorder : IMmuNotifier, IIntervalNotifier
{
    private static long s_sequence;

    private readonly Lock _lock = new();
    private readonly List<NotifierTraceEvent> _events = [];

    /// <summary>What the young ops answer (default false).</summary>
    public bool YoungAnswer { get; set; }

    /// <summary>A snapshot of the recorded events in order.</summary>
    public IReadOnlyList<NotifierTraceEvent> Events
    {
        get
        {
            lock (_lock)
            {
                return [.. _events];
            }
        }
    }

    /// <summary>The kinds of the recorded events, in order.</summary>
    public IReadOnlyList<NotifierTraceKind> Kinds => [.. Events.Select(e => e.Kind)];

    /// <summary>Number of recorded events of <paramref name="kind"/>.</summary>
    public int Count(NotifierTraceKind kind)
    {
        lock (_lock)
        {
            return _events.Count(e => e.Kind == kind);
        }
    }

    /// <summary>Forgets everything recorded so far.</summary>
    public void Clear()
    {
        lock (_lock)
        {
            _events.Clear();
        }
    }

    /// <summary>Adds a host-side step or marker to the timeline.</summary>
    public void RecordHost(NotifierTraceKind kind, int mmId, Hva start, Hva end, Pfn pfn = default, HostPte pte = default, string? label = null) =>
        Add(new NotifierTraceEvent { Kind = kind, MmId = mmId, Start = start, End = end, Pfn = pfn, Pte = pte, Label = label });

    /// <summary>Adds a free-form marker.</summary>
    public void Mark(string label) => Add(new NotifierTraceEvent { Kind = NotifierTraceKind.Mark, Label = label });

    /// <inheritdoc />
    public void Release(IMm mm) =>
        Add(new NotifierTraceEvent { Kind = NotifierTraceKind.Release, MmId = mm.Id, Start = Hva.Zero, End = Hva.AddressSpaceEnd });

    /// <inheritdoc />
    public bool InvalidateRangeStart(in NotifierRange range)
    {
        Add(FromRange(NotifierTraceKind.InvalidateRangeStart, in range));
        return true;
    }

    /// <inheritdoc />
    public void InvalidateRangeEnd(in NotifierRange range) => Add(FromRange(NotifierTraceKind.InvalidateRangeEnd, in range));

    /// <inheritdoc />
    public bool ClearFlushYoung(IMm mm, Hva start, Hva end)
    {
        Add(new NotifierTraceEvent { Kind = NotifierTraceKind.ClearFlushYoung, MmId = mm.Id, Start = start, End = end });
        return YoungAnswer;
    }

    /// <inheritdoc />
    public bool ClearYoung(IMm mm, Hva start, Hva end)
    {
        Add(new NotifierTraceEvent { Kind = NotifierTraceKind.ClearYoung, MmId = mm.Id, Start = start, End = end });
        return YoungAnswer;
    }

    /// <inheritdoc />
    public bool TestYoung(IMm mm, Hva address)
    {
        Add(new NotifierTraceEvent { Kind = NotifierTraceKind.TestYoung, MmId = mm.Id, Start = address, End = address + 1 });
        return YoungAnswer;
    }

    /// <inheritdoc />
    public void ChangePte(IMm mm, Hva address, HostPte pte) =>
        Add(new NotifierTraceEvent { Kind = NotifierTraceKind.ChangePte, MmId = mm.Id, Start = address, End = address + Paging.PageSize, Pte = pte, Pfn = pte.Pfn });

    /// <inheritdoc />
    public bool Invalidate(IntervalSubscription subscription, in NotifierRange range, ulong currentSequence)
    {
        ArgumentNullException.ThrowIfNull(subscription);
        subscription.SetSequence(currentSequence);
        Add(FromRange(NotifierTraceKind.IntervalInvalidate, in range));
        return true;
    }

    /// <summary>Records a secondary-TLB invalidation (used by <see cref="SecondaryTlbRecorder"/>).</summary>
    internal void RecordSecondaryTlbs(IMm mm, Hva start, Hva end) =>
        Add(new NotifierTraceEvent { Kind = NotifierTraceKind.InvalidateSecondaryTlbs, MmId = mm.Id, Start = start, End = end });

    private static NotifierTraceEvent FromRange(NotifierTraceKind kind, in NotifierRange range) => new()
    {
        Kind = kind,
        MmId = range.Mm.Id,
        Start = range.Start,
        End = range.End,
        Event = range.Event,
        Blockable = range.IsBlockable,
    };

    private void Add(NotifierTraceEvent traceEvent)
    {
        lock (_lock)
        {
            // Stamped under the lock so each recorder's list is in sequence order.
            _events.Add(traceEvent with
            {
                Sequence = Interlocked.Increment(ref s_sequence),
                ThreadId = Environment.CurrentManagedThreadId,
            });
        }
    }
}
