namespace Hypervisor.HostMm.Frames;

/// <summary>A snapshot of one NUMA node: a contiguous pfn range with its own free list.</summary>
/// <param name="Id">The node number, 0 to <see cref="HostMemory.NodeCount"/> - 1.</param>
/// <param name="FirstPfn">The node's first frame.</param>
/// <param name="FrameCount">The node's number of frames.</param>
/// <param name="FreeFrames">Frames on the node's free list when the snapshot was taken.</param>
public readonly record struct NumaNode(int Id, Pfn FirstPfn, long FrameCount, long FreeFrames)
{
    /// <summary>The frame after the node's last frame (end exclusive).</summary>
    public Pfn EndPfn => FirstPfn + (ulong)FrameCount;

    /// <summary>True when <paramref name="pfn"/> belongs to this node.</summary>
    public bool Contains(Pfn pfn) => pfn.Value >= FirstPfn.Value && pfn.Value < EndPfn.Value;
}
