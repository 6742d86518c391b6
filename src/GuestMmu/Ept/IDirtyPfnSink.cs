namespace Hypervisor.GuestMmu.Ept;

/// <summary>
/// Receives the frames a zap or an aging pass found dirty, so the caller can mark the host pages dirty
/// before anyone writes them out or frees them ("a zapped or aged spte whose dirty bit was set marks the
/// host page dirty"). Implement it on a struct: the bulk operations are generic over the sink and call it
/// without boxing or an indirect call.
/// </summary>
public interface IDirtyPfnSink
{
    /// <summary>The leaf for <paramref name="gfn"/> at <paramref name="level"/> (1 = 4 KiB, 2 = 2 MiB, 3 = 1 GiB) mapped <paramref name="pfn"/> and was dirty; a large leaf covers <see cref="EptGeometry.FramesPerEntry"/> frames from <paramref name="pfn"/>.</summary>
    void MarkDirty(Gfn gfn, Pfn pfn, int level);
}
