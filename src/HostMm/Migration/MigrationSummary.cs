namespace Hypervisor.HostMm.Migration;

/// <summary>What one migration call did (<see cref="Migrator.MigratePages"/>, <see cref="Migrator.MigrateRange"/>).</summary>
public readonly record struct MigrationSummary
{
    /// <summary>Pages moved to the target node.</summary>
    public long Migrated { get; init; }

    /// <summary>Pages that stayed where they were, for any reason (<see cref="Busy"/>, <see cref="Referenced"/>, <see cref="TargetNodeFull"/>, <see cref="Shared"/>).</summary>
    public long Failed => Busy + Referenced + TargetNodeFull + Shared;

    /// <summary>Pages that were busy through every pass (locked, isolated by someone else, or could not be unmapped).</summary>
    public long Busy { get; init; }

    /// <summary>Pages an extra reference held through every pass.</summary>
    public long Referenced { get; init; }

    /// <summary>Pages the target node had no room for.</summary>
    public long TargetNodeFull { get; init; }

    /// <summary>Pages mapped by several processes, skipped because shared pages were not asked for.</summary>
    public long Shared { get; init; }

    /// <summary>Of <see cref="Migrated"/>, the huge pages that moved whole (512 pages each).</summary>
    public long HugePages { get; init; }

    /// <summary>Retry passes run beyond the first (Linux retries -EAGAIN pages up to 10 passes).</summary>
    public int RetryPasses { get; init; }
}
