namespace Hypervisor.HostMm.PageTables;

/// <summary>Leaf entries of a range by kind, from <see cref="HostPageTable.CountEntries"/>.</summary>
public readonly record struct PteCounts
{
    /// <summary>Present entries.</summary>
    public long Present { get; init; }

    /// <summary>Present entries that allow writes.</summary>
    public long Writable { get; init; }

    /// <summary>Swap entries.</summary>
    public long Swap { get; init; }

    /// <summary>Migration entries.</summary>
    public long Migration { get; init; }

    /// <summary>PROT_NONE entries.</summary>
    public long ProtNone { get; init; }

    /// <summary>Entries that are not none.</summary>
    public long NonNone => Present + Swap + Migration + ProtNone;
}
