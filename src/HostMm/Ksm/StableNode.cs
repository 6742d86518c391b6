namespace Hypervisor.HostMm.Ksm;

/// <summary>
/// A stable-tree node (Linux's <c>ksm_stable_node</c>): a KSM page and the rmap items that share it, or a chain of
/// such pages (dups). Kept by value in the scanner's node array; changed under the scanner's leaf lock.
/// </summary>
[StructLayout(LayoutKind.Sequential)]
internal struct StableNode
{
    /// <summary>The KSM page (plain, dup, pending or orphan nodes).</summary>
    public Pfn Kpfn;

    /// <summary>Content hash of the KSM page (the stable tree's key).</summary>
    public ulong Hash;

    /// <summary>First sharer (an rmap item index), or <see cref="RmapItem.None"/>.</summary>
    public int Head;

    /// <summary>Sharers on the list (rmap_hlist_len); for a chain, its number of dups.</summary>
    public int Sharers;

    /// <summary>For a dup: its chain; for a chain: its first dup; else -1.</summary>
    public int Chain;

    /// <summary>For a dup: the next dup of the same chain; for a free node: the next free node.</summary>
    public int Next;

    /// <summary>What the slot holds.</summary>
    public StableNodeKind Kind;
}
