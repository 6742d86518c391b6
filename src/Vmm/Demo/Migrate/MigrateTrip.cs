using Hypervisor.HostMm.Migration;

namespace Hypervisor.Vmm.Demo.Migrate;

/// <summary>One trip of all guest RAM to one node (one <c>MigrateRange</c> over the memslot) and what it cost the guest.</summary>
public sealed record MigrateTrip
{
    /// <summary>The trip's number, from 1.</summary>
    public required int Number { get; init; }

    /// <summary>The node every page went to.</summary>
    public required int TargetNode { get; init; }

    /// <summary>What the migration call did: pages moved, failures by reason, retry passes.</summary>
    public required MigrationSummary Summary { get; init; }

    /// <summary>Wall-clock time of the migration call.</summary>
    public required TimeSpan Elapsed { get; init; }

    /// <summary>Whether the guest was running (neither held nor stopped) when the trip began and when it ended.</summary>
    public required bool GuestRunning { get; init; }

    /// <summary>Guest RAM's resident pages per node right after the trip (at the audit's quiescent point).</summary>
    public required IReadOnlyList<long> PagesPerNodeAfter { get; init; }

    /// <summary>Faults of the VM's process that waited on a migration entry from this trip's start to the next's.</summary>
    public required long MigrationEntryWaits { get; init; }

    /// <summary>Of <see cref="MigrationEntryWaits"/>, those in get-user-pages: EPT violations that met a migration entry.</summary>
    public required long EptMigrationEntryWaits { get; init; }

    /// <summary>Sptes the migration's notifier calls zapped (this trip's start to the next's).</summary>
    public required long SptesZapped { get; init; }

    /// <summary>EPT violations from this trip's start to the next's: the guest refaulting to the new frames.</summary>
    public required long EptViolations { get; init; }
}
