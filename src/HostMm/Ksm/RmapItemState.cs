namespace Hypervisor.HostMm.Ksm;

/// <summary>Which tree an rmap item is in (Linux's UNSTABLE_FLAG / STABLE_FLAG address bits).</summary>
internal enum RmapItemState : byte
{
    /// <summary>In no tree: new, volatile, or dropped from a tree.</summary>
    None = 0,

    /// <summary>In the unstable tree of the current full scan.</summary>
    Unstable = 1,

    /// <summary>On a stable node's sharer list.</summary>
    Stable = 2,
}
