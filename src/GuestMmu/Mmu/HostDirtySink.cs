using Hypervisor.GuestMmu.Ept;
using Hypervisor.HostMm.Frames;

namespace Hypervisor.GuestMmu.Mmu;

/// <summary>Moves the dirty bit of a zapped or aged spte to the host frame (KVM's kvm_set_pfn_dirty).</summary>
internal struct HostDirtySink : IDirtyPfnSink
{
    private readonly HostMemory? _memory;

    public HostDirtySink(HostMemory? memory)
    {
        _memory = memory;
        Marked = 0;
    }

    /// <summary>Frames marked dirty.</summary>
    public long Marked { get; private set; }

    public void MarkDirty(Gfn gfn, Pfn pfn, int level)
    {
        if (_memory is null)
        {
            return;
        }

        var frames = EptGeometry.FramesPerEntry(level);
        for (ulong i = 0; i < frames; i++)
        {
            _memory.SetFlags(pfn + i, FrameFlags.Dirty);
        }

        Marked += (long)frames;
    }
}
