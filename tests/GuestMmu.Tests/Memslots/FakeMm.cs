using Hypervisor.GuestMmu.Backing;
using Hypervisor.Notifier;

namespace Hypervisor.GuestMmu.Tests.Memslots;

/// <summary>
/// A bare host process for memslot tests: an id and a notifier chain, and a backing with no memory behind it (every
/// resolve fails as unmapped). Memslot tests only look slots up; they never fault.
/// </summary>
public sealed class FakeMm : IMm, IGuestMemoryBacking
{
    private static int s_nextId = 1000;

    public FakeMm() => Notifiers = new MmuNotifierChain(this);

    public int Id { get; } = Interlocked.Increment(ref s_nextId);

    public MmuNotifierChain Notifiers { get; }

    IMm IGuestMemoryBacking.Mm => this;

    ulong IGuestMemoryBacking.TotalFrames => 0;

    BackingPage IGuestMemoryBacking.Resolve(Hva address, bool write) => BackingPage.Failed(BackingStatus.Unmapped);

    void IGuestMemoryBacking.Release(Pfn pfn) => throw new InvalidOperationException($"{pfn} was never resolved: a fake mm has no frames");

    void IGuestMemoryBacking.MarkDirty(Pfn pfn, ulong count) => throw new InvalidOperationException($"{pfn} was never resolved: a fake mm has no frames");

    nint IGuestMemoryBacking.FrameAddress(Pfn pfn) => throw new InvalidOperationException($"{pfn} was never resolved: a fake mm has no frames");

    BackingFrameState IGuestMemoryBacking.QueryFrame(Pfn pfn) => BackingFrameState.OutOfRange;

    HostPte IGuestMemoryBacking.ReadPte(Hva address) => HostPte.None;
}
