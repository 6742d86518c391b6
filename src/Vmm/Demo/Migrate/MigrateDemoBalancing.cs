using Hypervisor.HostMm.Migration;

namespace Hypervisor.Vmm.Demo.Migrate;

/// <summary>
/// Phase 2 of the migrate demo: guest RAM bound to node 0 (mbind with move), the policy back to local, the vCPU's home
/// node set to 1, and NUMA balancing stepped under the running guest until most pages followed the vCPU.
/// </summary>
public sealed record MigrateDemoBalancing
{
    /// <summary>Guest RAM's pages per node when the phase began (after the trips).</summary>
    public required IReadOnlyList<long> PagesPerNodeAtStart { get; init; }

    /// <summary>What <c>mbind(bind 0, MPOL_MF_MOVE)</c> moved.</summary>
    public required MigrationSummary BindMove { get; init; }

    /// <summary>Guest RAM's pages per node after the bind: before balancing ran.</summary>
    public required IReadOnlyList<long> PagesPerNodeBefore { get; init; }

    /// <summary>Guest RAM's pages per node when balancing stopped stepping.</summary>
    public required IReadOnlyList<long> PagesPerNodeAfter { get; init; }

    /// <summary>The guest's own pages (those it fills and checks) per node after the bind.</summary>
    public required IReadOnlyList<long> DataPagesPerNodeBefore { get; init; }

    /// <summary>The guest's own pages per node when balancing stopped stepping.</summary>
    public required IReadOnlyList<long> DataPagesPerNodeAfter { get; init; }

    /// <summary>The balancer's counters over the phase (numa_pte_updates, numa_hint_faults(_local), numa_pages_migrated).</summary>
    public required NumaBalancingStats Stats { get; init; }

    /// <summary>Balancing steps run.</summary>
    public required long Steps { get; init; }

    /// <summary>Sptes zapped over the phase: the balancer's PROT_NONE scans, each zapping what it covers (the cost to the guest).</summary>
    public required long SptesZapped { get; init; }

    /// <summary>EPT violations over the phase: the guest's refaults after those zaps, each a hinting fault or a plain refault.</summary>
    public required long EptViolations { get; init; }

    /// <summary>Faults of the VM's process that waited on a migration entry over the phase (of them in get-user-pages: <see cref="EptMigrationEntryWaits"/>).</summary>
    public required long MigrationEntryWaits { get; init; }

    /// <summary>Of <see cref="MigrationEntryWaits"/>, those in get-user-pages (EPT violations).</summary>
    public required long EptMigrationEntryWaits { get; init; }

    /// <summary>Whether at least <see cref="MigrateDemoOptions.BalancedShare"/> of the guest's own resident pages were on node 1 before the guest finished.</summary>
    public required bool Balanced { get; init; }

    /// <summary>Wall-clock time from the first step to the last.</summary>
    public required TimeSpan Elapsed { get; init; }

    /// <summary>The share of the guest's own resident pages on node 1 at the end of the phase.</summary>
    public double ShareOnNode1 => DataPagesPerNodeAfter.Sum() == 0 ? 0 : (double)DataPagesPerNodeAfter[1] / DataPagesPerNodeAfter.Sum();
}
