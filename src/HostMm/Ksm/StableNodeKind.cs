namespace Hypervisor.HostMm.Ksm;

/// <summary>What a stable-node slot holds.</summary>
internal enum StableNodeKind : byte
{
    /// <summary>On the free list.</summary>
    Free = 0,

    /// <summary>Allocated for a merge in progress; not in the tree yet.</summary>
    Pending,

    /// <summary>A KSM page in the stable tree on its own.</summary>
    Plain,

    /// <summary>A chain: several KSM pages (dups) of equal content, each with at most max_page_sharing sharers.</summary>
    Chain,

    /// <summary>One KSM page of a chain.</summary>
    Dup,

    /// <summary>A KSM page whose content hash collides with a different page already in the tree; reachable only by its frame.</summary>
    Orphan,
}
