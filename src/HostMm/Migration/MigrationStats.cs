namespace Hypervisor.HostMm.Migration;

/// <summary>Host-wide page-migration counters, under Linux's <c>/proc/vmstat</c> names where one exists.</summary>
public readonly record struct MigrationStats
{
    /// <summary><c>pgmigrate_success</c>: pages migrated.</summary>
    public long PgmigrateSuccess { get; init; }

    /// <summary><c>pgmigrate_fail</c>: pages that failed to migrate after every retry pass.</summary>
    public long PgmigrateFail { get; init; }

    /// <summary>Attempts that ended in -EAGAIN and were retried (a page locked, a mapping not unmapped, an extra reference).</summary>
    public long Retries { get; init; }

    /// <summary>Migration entries installed by <c>try_to_migrate_one</c>.</summary>
    public long EntriesInstalled { get; init; }

    /// <summary>Migration entries replaced by <c>remove_migration_pte</c> (by the new frame, or the old one after an abandoned attempt).</summary>
    public long EntriesRemoved { get; init; }

    /// <summary>Failures by reason: extra references held through every pass.</summary>
    public long FailReferenced { get; init; }

    /// <summary>Failures by reason: busy through every pass.</summary>
    public long FailBusy { get; init; }

    /// <summary>Failures by reason: the target node was full.</summary>
    public long FailTargetNodeFull { get; init; }

    /// <summary><c>thp_migration_success</c>: huge pages migrated whole (their 512 pages count in <see cref="PgmigrateSuccess"/> too).</summary>
    public long ThpMigrationSuccess { get; init; }

    /// <summary><c>thp_migration_split</c>: huge pages split to migrate 4 KiB at a time (shared, or no whole block on the target node).</summary>
    public long ThpMigrationSplit { get; init; }
}
