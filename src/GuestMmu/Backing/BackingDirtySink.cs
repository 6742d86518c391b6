using Hypervisor.GuestMmu.Ept;

namespace Hypervisor.GuestMmu.Backing;

/// <summary>
/// Hands the dirty bit of a zapped or aged spte back to the backing that owns its frame (KVM's
/// <c>kvm_set_pfn_dirty</c>), for a range that lies inside one memslot.
/// </summary>
/// <remarks>A struct so that the bulk EPT operations, generic over their sink, call it without boxing.</remarks>
internal struct BackingDirtySink : IDirtyPfnSink
{
    private readonly IGuestMemoryBacking _backing;

    /// <summary>A sink that marks frames dirty in <paramref name="backing"/>.</summary>
    public BackingDirtySink(IGuestMemoryBacking backing)
    {
        _backing = backing;
        Marked = 0;
    }

    /// <summary>Frames marked dirty.</summary>
    public long Marked { get; private set; }

    /// <inheritdoc />
    public void MarkDirty(Gfn gfn, Pfn pfn, int level)
    {
        var frames = EptGeometry.FramesPerEntry(level);
        _backing.MarkDirty(pfn, frames);
        Marked += (long)frames;
    }
}
