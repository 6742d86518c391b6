namespace Hypervisor.Notifier.UserEvents;

/// <summary>A snapshot of one <see cref="UserEventChannel"/>'s counters, for the CLI, tests and benchmarks.</summary>
public readonly record struct UserEventChannelStats
{
    /// <summary>Regions registered now.</summary>
    public int Regions { get; init; }

    /// <summary>Invalidate events waiting to be read.</summary>
    public int PendingEvents { get; init; }

    /// <summary>Invalidate events returned by reads so far.</summary>
    public long EventsDelivered { get; init; }

    /// <summary>Last events returned by reads so far.</summary>
    public long LastEventsDelivered { get; init; }

    /// <summary>The generation counter: range starts that hit at least one region.</summary>
    public ulong Generation { get; init; }

    /// <summary>Range starts received, whether or not they hit a region.</summary>
    public long RangeStarts { get; init; }

    /// <summary>(start, region) overlaps: each one either queued an event or was coalesced.</summary>
    public long RegionHits { get; init; }

    /// <summary>Region hits folded into an event already pending (each clears that event's hint).</summary>
    public long HitsCoalesced { get; init; }
}
