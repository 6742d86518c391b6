namespace Hypervisor.Notifier;

/// <summary>A snapshot of one chain's counters, for the CLI, tests and benchmarks.</summary>
public readonly record struct MmuNotifierChainStats
{
    /// <summary>Subscriptions listed now.</summary>
    public int Subscribers { get; init; }

    /// <summary>Interval subscriptions in the tree now.</summary>
    public int Intervals { get; init; }

    /// <summary>Range starts issued (including failed ones).</summary>
    public long Starts { get; init; }

    /// <summary>Range ends issued.</summary>
    public long Ends { get; init; }

    /// <summary>Non-blockable starts that a subscriber refused.</summary>
    public long FailedStarts { get; init; }

    /// <summary>Interval invalidate callbacks issued.</summary>
    public long IntervalInvalidations { get; init; }

    /// <summary>Aging calls: clear_flush_young + clear_young + test_young.</summary>
    public long YoungCalls { get; init; }

    /// <summary>Aging calls that answered young.</summary>
    public long YoungHits { get; init; }

    /// <summary>Legacy change_pte calls.</summary>
    public long ChangePtes { get; init; }

    /// <summary>Secondary-TLB invalidations.</summary>
    public long SecondaryTlbInvalidations { get; init; }

    /// <summary>Subscriptions released by exit or unregister (each once), whether or not they implement the release op.</summary>
    public long Releases { get; init; }

    /// <summary>Completed grace periods of the chain's read side.</summary>
    public long GracePeriods { get; init; }

    /// <summary>The interval sequence: even when idle, odd while an invalidation holds the tree.</summary>
    public ulong IntervalSequence { get; init; }

    /// <summary>True once exit has started.</summary>
    public bool Exiting { get; init; }
}
