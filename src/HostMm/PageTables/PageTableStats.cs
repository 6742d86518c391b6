namespace Hypervisor.HostMm.PageTables;

/// <summary>Table frames of a <see cref="HostPageTable"/>, per level (a racy snapshot unless quiescent).</summary>
public readonly record struct PageTableStats
{
    /// <summary>PML4 (root) tables: 1, or 0 after dispose.</summary>
    public long RootTables { get; init; }

    /// <summary>PDPT tables (each maps 512 GiB).</summary>
    public long PdptTables { get; init; }

    /// <summary>PD tables (each maps 1 GiB).</summary>
    public long PdTables { get; init; }

    /// <summary>PTE tables (each maps 2 MiB).</summary>
    public long PteTables { get; init; }

    /// <summary>All table frames.</summary>
    public long TotalTables => RootTables + PdptTables + PdTables + PteTables;
}
