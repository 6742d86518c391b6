namespace Hypervisor.HostMm;

/// <summary>One process's transparent huge page counters, under Linux's <c>/proc/vmstat</c> names.</summary>
public readonly record struct ThpStats
{
    /// <summary><c>thp_fault_alloc</c>: faults that mapped a new 2 MiB page.</summary>
    public long ThpFaultAlloc { get; init; }

    /// <summary><c>thp_fault_fallback</c>: huge faults that found no whole 2 MiB block (or no cgroup room) and fell back to 4 KiB.</summary>
    public long ThpFaultFallback { get; init; }

    /// <summary>Read faults that mapped the huge zero page (<c>thp_zero_page_alloc</c> counts its one allocation; this counts its mappings).</summary>
    public long ThpZeroPageFaults { get; init; }

    /// <summary><c>thp_split_pmd</c>: huge leaves split into 512 PTEs.</summary>
    public long ThpSplitPmd { get; init; }

    /// <summary>Huge leaves mapped now (<c>AnonHugePages</c> / 2 MiB).</summary>
    public long HugeLeaves { get; init; }
}
