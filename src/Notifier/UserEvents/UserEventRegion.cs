using Hypervisor.Notifier.Intervals;

namespace Hypervisor.Notifier.UserEvents;

/// <summary>
/// One registered region of a <see cref="UserEventChannel"/> and, when it has an unread event, its link in the
/// channel's pending list (intrusive, so queuing an event allocates nothing). Every mutable field is guarded
/// by the channel's lock.
/// </summary>
internal sealed class UserEventRegion
{
    public UserEventRegion(ulong cookie, Hva start, Hva end)
    {
        Cookie = cookie;
        Start = start;
        End = end;
    }

    /// <summary>The consumer's cookie.</summary>
    public ulong Cookie { get; }

    /// <summary>Inclusive start.</summary>
    public Hva Start { get; }

    /// <summary>Exclusive end.</summary>
    public Hva End { get; }

    /// <summary>The region's node in the channel's interval tree; set right after insertion.</summary>
    public IntervalTreeNode<UserEventRegion>? Node;

    /// <summary>True while the region has an event on the pending list (hit since last read).</summary>
    public bool IsPending;

    /// <summary>True while the pending event came from a single hit, so the hint is exact.</summary>
    public bool HasHint;

    /// <summary>Start of the single hit's intersection with the region.</summary>
    public Hva HintStart;

    /// <summary>End of the single hit's intersection with the region.</summary>
    public Hva HintEnd;

    /// <summary>Older neighbour on the pending list; null at the head or when not pending.</summary>
    public UserEventRegion? PendingPrevious;

    /// <summary>Newer neighbour on the pending list; null at the tail or when not pending.</summary>
    public UserEventRegion? PendingNext;
}
