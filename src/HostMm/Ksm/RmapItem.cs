namespace Hypervisor.HostMm.Ksm;

/// <summary>
/// One scanned (process, address) (Linux's <c>ksm_rmap_item</c>), kept by value in the scanner's item array and
/// linked by indices: no managed object per page. Owned by the scanner thread (under its scan lock); the stable-node
/// links (<see cref="Node"/>, <see cref="SharerNext"/>, <see cref="SharerPrev"/>, <see cref="Family"/>,
/// <see cref="Index"/>) change only under the scanner's leaf lock too, because reverse-map walks read them.
/// </summary>
[StructLayout(LayoutKind.Sequential)]
internal struct RmapItem
{
    /// <summary>"No item" for every index link.</summary>
    public const int None = -1;

    /// <summary>Page-aligned address in the process.</summary>
    public ulong Address;

    /// <summary>The page's content hash at the last visit (xxHash3-64); valid when <see cref="HasChecksum"/>.</summary>
    public ulong Checksum;

    /// <summary>While stable: the anon page index of the mapping (its VMA's linear index), for rmap_walk_ksm.</summary>
    public ulong Index;

    /// <summary>The owning process's slot id.</summary>
    public int Slot;

    /// <summary>Next item of the same process in address order (the slot's rmap_list).</summary>
    public int Next;

    /// <summary>While stable: the stable node (or dup) whose sharer list holds the item.</summary>
    public int Node;

    /// <summary>Next item on the stable node's sharer list.</summary>
    public int SharerNext;

    /// <summary>Previous item on the stable node's sharer list.</summary>
    public int SharerPrev;

    /// <summary>While stable: the anon family (VMA AnonId) of the mapping, for rmap_walk_ksm (forked children share it).</summary>
    public int Family;

    /// <summary>Smart scan: consecutive visits without a merge (saturates at 255).</summary>
    public byte Age;

    /// <summary>Smart scan: visits still to skip.</summary>
    public byte RemainingSkips;

    /// <summary>Which tree holds the item.</summary>
    public RmapItemState State;

    /// <summary>True once a visit recorded <see cref="Checksum"/> (a new item's first visit only records it).</summary>
    public bool HasChecksum;
}
