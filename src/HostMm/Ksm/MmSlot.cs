namespace Hypervisor.HostMm.Ksm;

/// <summary>
/// A process on the KSM scan list (Linux's <c>ksm_mm_slot</c>): its rmap items in address order and the scan cursor
/// inside it. One per process, owned by the scanner (under its scan lock); the counters are read under the leaf lock.
/// </summary>
internal sealed class MmSlot(Mm mm, int id)
{
    /// <summary>The process.</summary>
    public Mm Mm { get; } = mm;

    /// <summary>Key in the scanner's slot table (never reused).</summary>
    public int Id { get; } = id;

    /// <summary>First rmap item in address order, or <see cref="RmapItem.None"/>.</summary>
    public int First = RmapItem.None;

    /// <summary>The item visited last in the current pass over this process (the cursor), or none at the start.</summary>
    public int Previous = RmapItem.None;

    /// <summary>Where the current pass over this process goes on.</summary>
    public Hva ScanAddress;

    /// <summary>True while a pass over this process is under way (it stopped inside it).</summary>
    public bool Started => Previous != RmapItem.None || ScanAddress != Hva.Zero;

    /// <summary>rmap items of this process.</summary>
    public long Items;

    /// <summary>Of those, items in the stable tree (ksm_merging_pages).</summary>
    public long Merging;

    /// <summary>False once the slot left the scan list.</summary>
    public bool Listed = true;
}
