namespace Hypervisor.GuestMmu.Ept;

/// <summary>A snapshot of one <see cref="EptPageTable"/>'s counters (racy unless the table is quiescent).</summary>
public readonly record struct EptStats
{
    /// <summary>Tables linked into this page table, root included.</summary>
    public long Tables { get; init; }

    /// <summary>Tables unlinked but not yet returned to the arena (waiting for <see cref="EptPageTable.ReclaimRetiredTables"/>).</summary>
    public long RetiredTables { get; init; }

    /// <summary>Present leaves (a large leaf counts once).</summary>
    public long PresentLeaves { get; init; }

    /// <summary>Successful installs.</summary>
    public long Installs { get; init; }

    /// <summary>Installs that lost their compare-exchange (the entry changed) and returned <see cref="InstallResult.Changed"/>.</summary>
    public long InstallRaces { get; init; }

    /// <summary>Tables a racing installer linked first, so this installer's new table went straight back to the arena.</summary>
    public long TableRaces { get; init; }

    /// <summary>Zap operations (ranges and zap-all).</summary>
    public long Zaps { get; init; }

    /// <summary>Leaves zapped.</summary>
    public long ZappedLeaves { get; init; }

    /// <summary>Zapped or aged leaves reported dirty.</summary>
    public long DirtyLeaves { get; init; }

    /// <summary>Aging passes (test or clear).</summary>
    public long Ages { get; init; }

    /// <summary>Young leaves seen by aging passes.</summary>
    public long AgedYoung { get; init; }

    /// <summary>Single-gfn young tests.</summary>
    public long YoungTests { get; init; }

    /// <summary>Single-gfn young tests that answered young.</summary>
    public long YoungHits { get; init; }

    /// <summary>Whole leaf tables a zap cleared with a plain memset, without reading them, because their counts said every entry was present and none dirty.</summary>
    public long WholeTableClears { get; init; }

    /// <summary>Whole leaf tables a zap skipped without reading them, because their counts said nothing in them was present.</summary>
    public long EmptyTablesSkipped { get; init; }
}
