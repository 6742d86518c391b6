namespace Hypervisor.HostMm.Swap;

/// <summary>
/// A snapshot of a <see cref="SwapArea"/>'s totals and counters, under Linux's names where one exists. Taken
/// without stopping allocators: each field is exact, the fields are not mutually consistent under concurrent use.
/// </summary>
public readonly record struct SwapAreaStats
{
    /// <summary>Slots that can hold a page: all but the header and BAD slots (<c>SwapTotal</c> in pages).</summary>
    public long TotalSlots { get; init; }

    /// <summary>Of those, slots not allocated (<c>SwapFree</c> in pages).</summary>
    public long FreeSlots { get; init; }

    /// <summary>Allocated slots.</summary>
    public long UsedSlots => TotalSlots - FreeSlots;

    /// <summary>Slots marked BAD, the header slot not included.</summary>
    public long BadSlots { get; init; }

    /// <summary>More than half the slots are used (<c>vm_swap_full()</c>).</summary>
    public bool VmSwapFull => FreeSlots * 2 < TotalSlots;

    /// <summary>Clusters with no slot allocated.</summary>
    public int FreeClusters { get; init; }

    /// <summary>Clusters partly allocated.</summary>
    public int NonFullClusters { get; init; }

    /// <summary>Clusters fully allocated.</summary>
    public int FullClusters { get; init; }

    /// <summary>Slots handed out.</summary>
    public long Allocations { get; init; }

    /// <summary>Allocation calls that found no free slot (swap full) for at least one requested slot.</summary>
    public long AllocationFailures { get; init; }

    /// <summary>Slots that went back to free.</summary>
    public long SlotsFreed { get; init; }

    /// <summary>Pages written to the device (<c>pswpout</c>).</summary>
    public long Pswpout { get; init; }

    /// <summary>Pages read from the device and verified (<c>pswpin</c>).</summary>
    public long Pswpin { get; init; }

    /// <summary>Zero pages recorded in the zero map instead of written (<c>swpout_zero</c>).</summary>
    public long SwpoutZero { get; init; }

    /// <summary>Zero pages filled from the zero map instead of read (<c>swpin_zero</c>).</summary>
    public long SwpinZero { get; init; }

    /// <summary>Reads whose data failed its CRC-32C.</summary>
    public long ChecksumFailures { get; init; }

    /// <summary>Reads the device failed.</summary>
    public long ReadErrors { get; init; }

    /// <summary>Writes the device failed (disk full included).</summary>
    public long WriteErrors { get; init; }
}
