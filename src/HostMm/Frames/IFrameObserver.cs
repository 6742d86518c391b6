namespace Hypervisor.HostMm.Frames;

/// <summary>
/// Sees frames return to the allocator, so ordering tests can check that no frame a secondary MMU may
/// still map is freed before the notifier's start returned.
/// </summary>
public interface IFrameObserver
{
    /// <summary>
    /// Called on the freeing thread after <paramref name="pfn"/> is back on its node's free list, with no
    /// allocator lock held (the caller's own locks may be held). The frame may already be reallocated by
    /// the time this runs.
    /// </summary>
    void OnFrameFreed(Pfn pfn);
}
