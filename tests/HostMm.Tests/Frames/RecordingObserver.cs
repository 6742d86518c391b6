using System.Collections.Concurrent;
using Hypervisor.HostMm.Frames;
using Hypervisor.Notifier;

namespace Hypervisor.HostMm.Tests.Frames;

/// <summary>Records every frame freed, and whether it was already on the free list when reported.</summary>
public sealed class RecordingObserver(HostMemory memory) : IFrameObserver
{
    public ConcurrentQueue<(Pfn Pfn, bool WasFree)> Freed { get; } = new();

    public void OnFrameFreed(Pfn pfn) => Freed.Enqueue((pfn, memory.IsFree(pfn)));
}
