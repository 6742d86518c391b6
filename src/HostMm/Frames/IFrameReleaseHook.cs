namespace Hypervisor.HostMm.Frames;

/// <summary>
/// Told, by <see cref="HostMemory"/>, when a frame's last reference is gone and before the frame returns to its free
/// list, so that state no reference pins — LRU membership and a memory-cgroup charge — is undone exactly once
/// (Linux's <c>__folio_put</c> → <c>lruvec_del_folio</c>, <c>mem_cgroup_uncharge</c>).
/// </summary>
/// <remarks>
/// Called on the thread that dropped the last reference, for frames on an LRU list (<see cref="FrameFlags.Lru"/>) or
/// charged to a cgroup (<see cref="FrameInfo.MemoryCgroupId"/> non-zero) only. The refcount is already 0, so no
/// speculative <see cref="HostMemory.TryGet"/> can revive the frame meanwhile. The hook must clear
/// <see cref="FrameFlags.Lru"/> and the charge; it may take an LRU lock (a leaf) and must not allocate or free frames.
/// </remarks>
public interface IFrameReleaseHook
{
    /// <summary>Undoes the LRU membership and the charge of <paramref name="pfn"/>, whose refcount just reached 0.</summary>
    void OnLastReference(Pfn pfn, ref FrameInfo frame);
}
