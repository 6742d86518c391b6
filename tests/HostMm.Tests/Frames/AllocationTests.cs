using Hypervisor.HostMm.Frames;
using Hypervisor.Notifier;

namespace Hypervisor.HostMm.Tests.Frames;

public sealed class AllocationTests
{
    private const int FramesPerNode = 8192;

    [Test]
    public void FreshMemory_HasEveryFrameFreeAndSplitIntoNodes()
    {
        using var memory = TestMemory.Create();
        Assert.That(memory.TotalFrames, Is.EqualTo(16384));
        Assert.That(memory.FreeFrames, Is.EqualTo(16384));
        Assert.That(memory.GetNode(0), Is.EqualTo(new NumaNode(0, new Pfn(0), FramesPerNode, FramesPerNode)));
        Assert.That(memory.GetNode(1), Is.EqualTo(new NumaNode(1, new Pfn(FramesPerNode), FramesPerNode, FramesPerNode)));
        Assert.That(memory.NodeOf(new Pfn(FramesPerNode - 1)), Is.EqualTo(0));
        Assert.That(memory.NodeOf(new Pfn(FramesPerNode)), Is.EqualTo(1));
        Assert.That(memory.Frame(new Pfn(FramesPerNode)).Node, Is.EqualTo(1));
        Assert.That(memory.IsFree(new Pfn(0)), Is.True, "pfn 0 is a real frame");
    }

    [Test]
    public void AllocatedFrame_HasOneReferenceNoMappingAndNoFlags()
    {
        using var memory = TestMemory.Create();
        var pfn = memory.Allocate(1);
        ref var frame = ref memory.Frame(pfn);
        Assert.That(frame.RefCount, Is.EqualTo(1));
        Assert.That(frame.MapCount, Is.Zero);
        Assert.That(frame.Flags, Is.EqualTo(FrameFlags.None));
        Assert.That(frame.Node, Is.EqualTo(1));
        Assert.That(frame.LruNext, Is.EqualTo(FrameInfo.NoFrame));
        Assert.That(frame.LruPrev, Is.EqualTo(FrameInfo.NoFrame));
        Assert.That(frame.RmapOwner, Is.EqualTo(FrameInfo.NoOwner));
        Assert.That(frame.SwapSlot, Is.EqualTo(FrameInfo.NoSwapSlot));
        Assert.That(memory.IsFree(pfn), Is.False);
        Assert.That(memory.GetNode(1).FreeFrames, Is.EqualTo(FramesPerNode - 1));
    }

    [Test]
    public void AllocateUntilExhausted_ThenOutOfHostMemoryNamingNodesFlagsAndCounts()
    {
        using var memory = TestMemory.Create();
        var seen = new HashSet<ulong>();
        for (var i = 0; i < memory.TotalFrames; i++)
        {
            Assert.That(seen.Add(memory.Allocate(0).Value), Is.True, "each frame is handed out once");
        }

        Assert.That(seen.Min(), Is.Zero);
        Assert.That(seen.Max(), Is.EqualTo((ulong)memory.TotalFrames - 1));
        Assert.That(memory.FreeFrames, Is.Zero);

        var ex = Assert.Throws<OutOfHostMemoryException>(() => memory.Allocate(0, AllocationFlags.Zero));
        Assert.That(ex!.Message, Does.Contain("any node").And.Contain("preferred node 0").And.Contain("Zero")
            .And.Contain("node 0: 0").And.Contain("node 1: 0"));
        Assert.That(ex.PreferredNode, Is.Zero);
        Assert.That(ex.Flags, Is.EqualTo(AllocationFlags.Zero));
        Assert.That(ex.FreeFramesPerNode, Is.EqualTo(new long[] { 0, 0 }));
        Assert.That(memory.TryAllocate(1, AllocationFlags.None, out _), Is.False);

        foreach (var value in seen)
        {
            Assert.That(memory.Put(new Pfn(value)), Is.True);
        }

        var stats = memory.GetStats();
        Assert.That(stats.FreeFrames, Is.EqualTo(memory.TotalFrames));
        Assert.That(stats.FreeFramesPerNode, Is.EqualTo(new long[] { FramesPerNode, FramesPerNode }));
        Assert.That(stats.Allocations, Is.EqualTo(memory.TotalFrames));
        Assert.That(stats.Frees, Is.EqualTo(memory.TotalFrames));
        Assert.That(stats.FallbackAllocations, Is.EqualTo(FramesPerNode), "node 1 served node 0 once node 0 ran dry");
        Assert.That(stats.AllocatedFrames, Is.Zero);
    }

    [Test]
    public void ExactNode_FailsWhenItsNodeIsEmptyWhileFallbackUsesAnotherNode()
    {
        using var memory = TestMemory.Create();
        for (var i = 0; i < FramesPerNode; i++)
        {
            Assert.That(memory.NodeOf(memory.Allocate(1, AllocationFlags.ExactNode)), Is.EqualTo(1));
        }

        var ex = Assert.Throws<OutOfHostMemoryException>(() => memory.Allocate(1, AllocationFlags.ExactNode));
        Assert.That(ex!.Message, Does.Contain("no free frame on node 1 ").And.Contain("ExactNode")
            .And.Contain($"node 0: {FramesPerNode}").And.Contain("node 1: 0"));
        Assert.That(memory.TryAllocate(1, AllocationFlags.ExactNode, out _), Is.False);
        Assert.That(memory.GetStats().FallbackAllocations, Is.Zero);

        var fallback = memory.Allocate(1);
        Assert.That(memory.NodeOf(fallback), Is.Zero);
        Assert.That(memory.Frame(fallback).Node, Is.Zero);
        Assert.That(memory.GetStats().FallbackAllocations, Is.EqualTo(1));
    }

    [Test]
    public void Fallback_TriesTheOtherNodesInAscendingOrder()
    {
        using var memory = TestMemory.Create(totalBytes: 72UL << 20, nodes: 3);
        var perNode = (int)memory.GetNode(2).FrameCount;
        for (var i = 0; i < perNode; i++)
        {
            memory.Allocate(2, AllocationFlags.ExactNode);
        }

        Assert.That(memory.NodeOf(memory.Allocate(2)), Is.Zero);
        Assert.That(memory.NodeOf(memory.Allocate(1)), Is.EqualTo(1), "a node with frames serves itself");
    }

    [Test]
    public void FreshFrames_ComeLowestPfnFirstAndFreedFramesComeBackFirst()
    {
        using var memory = TestMemory.Create();
        var a = memory.Allocate(0);
        var b = memory.Allocate(0);
        Assert.That(a, Is.EqualTo(new Pfn(0)));
        Assert.That(b, Is.EqualTo(new Pfn(1)));
        memory.Put(a);
        Assert.That(memory.Allocate(0), Is.EqualTo(a));
    }

    [Test]
    public void Zero_ClearsAFrameThatHeldData()
    {
        using var memory = TestMemory.Create();
        var pfn = memory.Allocate(0);
        memory.FrameBytes(pfn).Fill(0xA5);
        memory.Put(pfn);

        var again = memory.Allocate(0, AllocationFlags.Zero);
        Assert.That(again, Is.EqualTo(pfn), "LIFO hands the same frame back");
        Assert.That(memory.FrameBytes(again).ContainsAnyExcept((byte)0), Is.False);
        Assert.That(memory.Frame(again).Flags, Is.EqualTo(FrameFlags.Zeroed));
        Assert.That(memory.GetStats().ZeroedFrames, Is.EqualTo(1));
    }

    [Test]
    public void WithoutZero_ContentsAreLeftAsTheyWere()
    {
        using var memory = TestMemory.Create();
        var pfn = memory.Allocate(0);
        memory.FrameBytes(pfn).Fill(0xA5);
        memory.Put(pfn);

        var again = memory.Allocate(0);
        Assert.That(again, Is.EqualTo(pfn));
        Assert.That(memory.FrameBytes(again)[4095], Is.EqualTo(0xA5), "only Zero pays for clearing");
        Assert.That(memory.GetStats().ZeroedFrames, Is.Zero);
    }

    [Test]
    public void Observer_SeesTheLastPutAfterTheFrameIsFree()
    {
        using var memory = TestMemory.Create();
        var observer = new RecordingObserver(memory);
        memory.Observer = observer;
        var pfn = memory.Allocate(1);
        memory.Get(pfn);

        Assert.That(memory.Put(pfn), Is.False);
        Assert.That(observer.Freed, Is.Empty, "a put that leaves a reference frees nothing");

        Assert.That(memory.Put(pfn), Is.True);
        Assert.That(observer.Freed, Is.EqualTo(new[] { (pfn, true) }));

        var other = memory.Allocate(0);
        memory.Free(other);
        Assert.That(observer.Freed.Last(), Is.EqualTo((other, true)));
    }

    [Test]
    public void BadNodeOrFlags_AreRejectedNamingTheValue()
    {
        using var memory = TestMemory.Create();
        Assert.That(() => memory.Allocate(2), Throws.TypeOf<ArgumentOutOfRangeException>().With.Message.Contains("NUMA node 2"));
        Assert.That(() => memory.Allocate(-1), Throws.TypeOf<ArgumentOutOfRangeException>().With.Message.Contains("NUMA node -1"));
        Assert.That(() => memory.GetNode(5), Throws.TypeOf<ArgumentOutOfRangeException>().With.Message.Contains("NUMA node 5"));
        Assert.That(
            () => memory.Allocate(0, (AllocationFlags)0x40),
            Throws.TypeOf<ArgumentOutOfRangeException>().With.Message.Contains("64").And.Message.Contains("unknown bits"));
        Assert.That(memory.GetStats().Allocations, Is.Zero);
    }

    [Test]
    public void PfnOutsideRam_IsRejectedNamingThePfn()
    {
        using var memory = TestMemory.Create();
        var outside = new Pfn((ulong)memory.TotalFrames);
        Assert.That(
            () => memory.Frame(outside),
            Throws.TypeOf<PfnOutOfRangeException>().With.Message.Contains("pfn:0x4000").And.Message.Contains("outside host RAM"));
        Assert.That(() => memory.Put(new Pfn(ulong.MaxValue)), Throws.TypeOf<PfnOutOfRangeException>());
        Assert.That(() => memory.FrameBytes(outside), Throws.TypeOf<PfnOutOfRangeException>());
        Assert.That(() => memory.IsFree(outside), Throws.TypeOf<PfnOutOfRangeException>());
    }

    [Test]
    public void Dispose_ThenContentsAccessThrows()
    {
        var memory = TestMemory.Create();
        var pfn = memory.Allocate(0);
        memory.Dispose();
        Assert.That(() => memory.FrameBytes(pfn), Throws.TypeOf<ObjectDisposedException>());
        memory.Dispose();
    }
}
