namespace Hypervisor.HostMm.Reclaim;

/// <summary>The frame indices of one <see cref="WritebackRun"/>, inline (a write run holds at most 32 pages).</summary>
[InlineArray(Capacity)]
internal struct WritebackFrames
{
    /// <summary>Frames a run can hold (reclaim's largest write run).</summary>
    public const int Capacity = 32;

    private uint _first;
}
