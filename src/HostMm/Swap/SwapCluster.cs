namespace Hypervisor.HostMm.Swap;

/// <summary>
/// One cluster of <see cref="SwapArea.ClusterSlots"/> slots (Linux's <c>swap_cluster_info</c>). <see cref="Lock"/>
/// (a spin word) guards <see cref="Used"/>, <see cref="Usable"/>, <see cref="Hint"/> and the cluster's
/// <c>swap_map</c> words; <see cref="List"/> changes only with both the cluster lock and the area's list lock held;
/// <see cref="Prev"/>/<see cref="Next"/> belong to the list lock.
/// </summary>
internal struct SwapCluster
{
    /// <summary>0 free, 1 held.</summary>
    public int Lock;

    /// <summary>Allocated slots (word non-zero and not BAD).</summary>
    public int Used;

    /// <summary>Slots that can be allocated: the cluster's size minus its BAD slots.</summary>
    public int Usable;

    /// <summary>Cluster-relative slot where the next free-slot scan starts (the slot after the last one handed out).</summary>
    public int Hint;

    /// <summary>Slots in the cluster (512, less for the last cluster of a device whose size is not a multiple).</summary>
    public int Size;

    /// <summary>Previous cluster on <see cref="List"/>, or −1.</summary>
    public int Prev;

    /// <summary>Next cluster on <see cref="List"/>, or −1.</summary>
    public int Next;

    /// <summary>The list the cluster is on.</summary>
    public SwapClusterList List;
}
