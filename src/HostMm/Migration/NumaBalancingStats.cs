namespace Hypervisor.HostMm.Migration;

/// <summary>NUMA balancing counters, under Linux's <c>/proc/vmstat</c> names.</summary>
public readonly record struct NumaBalancingStats
{
    /// <summary><c>numa_pte_updates</c>: PTEs the scanner made PROT_NONE for hinting faults.</summary>
    public long NumaPteUpdates { get; init; }

    /// <summary><c>numa_hint_faults</c>: faults on those entries.</summary>
    public long NumaHintFaults { get; init; }

    /// <summary><c>numa_hint_faults_local</c>: of those, faults whose page was already on the faulting thread's node.</summary>
    public long NumaHintFaultsLocal { get; init; }

    /// <summary><c>numa_pages_migrated</c>: pages hinting faults moved to the faulting thread's node.</summary>
    public long NumaPagesMigrated { get; init; }

    /// <summary>Hinting faults whose page should have moved but could not (busy, referenced, target node full).</summary>
    public long NumaMigrateFailed { get; init; }

    /// <summary>Times the scanner finished a pass over every process's memory and started again.</summary>
    public long FullScans { get; init; }
}
