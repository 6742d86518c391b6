using Hypervisor.HostMm.Frames;
using Hypervisor.Notifier;

namespace Hypervisor.HostMm.Tests.Frames;

public sealed class RefCountTests
{
    [Test]
    public void GetAndPut_CountReferencesAndTheLastPutFrees()
    {
        using var memory = TestMemory.Create();
        var pfn = memory.Allocate(0);
        memory.Get(pfn);
        memory.Get(pfn);
        Assert.That(memory.Frame(pfn).RefCount, Is.EqualTo(3));
        Assert.That(memory.Put(pfn), Is.False);
        Assert.That(memory.Put(pfn), Is.False);
        Assert.That(memory.IsFree(pfn), Is.False);
        Assert.That(memory.Put(pfn), Is.True);
        Assert.That(memory.IsFree(pfn), Is.True);
        Assert.That(memory.Frame(pfn).RefCount, Is.Zero);
    }

    [Test]
    public void PutOnAFreeFrame_ThrowsNamingThePfn()
    {
        using var memory = TestMemory.Create();
        var pfn = memory.Allocate(1);
        memory.Put(pfn);
        var ex = Assert.Throws<FrameStateException>(() => memory.Put(pfn));
        Assert.That(ex!.Pfn, Is.EqualTo(pfn));
        Assert.That(ex.Message, Does.Contain(pfn.ToString()).And.Contain("refcount is 0").And.Contain("double put"));
        Assert.That(memory.GetNode(1).FreeFrames, Is.EqualTo(8192), "the failed put changed nothing");
    }

    [Test]
    public void FreeTwice_ThrowsDoubleFree()
    {
        using var memory = TestMemory.Create();
        var pfn = memory.Allocate(0);
        memory.Free(pfn);
        Assert.That(
            () => memory.Free(pfn),
            Throws.TypeOf<FrameStateException>().With.Message.Contains(pfn.ToString()).And.Message.Contains("double free"));
        Assert.That(memory.GetStats().Frees, Is.EqualTo(1));
    }

    [Test]
    public void FreeWithOtherReferences_ThrowsAndChangesNothing()
    {
        using var memory = TestMemory.Create();
        var pfn = memory.Allocate(0);
        memory.Get(pfn);
        Assert.That(
            () => memory.Free(pfn),
            Throws.TypeOf<FrameStateException>().With.Message.Contains(pfn.ToString()).And.Message.Contains("refcount is 2"));
        Assert.That(memory.Frame(pfn).RefCount, Is.EqualTo(2));
        Assert.That(memory.IsFree(pfn), Is.False);
    }

    [Test]
    public void DroppingTheLastReferenceOfAMappedFrame_ThrowsAndKeepsTheFrame()
    {
        using var memory = TestMemory.Create();
        var pfn = memory.Allocate(0);
        Assert.That(memory.IncrementMapCount(pfn), Is.EqualTo(1));

        var ex = Assert.Throws<FrameStateException>(() => memory.Put(pfn));
        Assert.That(ex!.Message, Does.Contain(pfn.ToString()).And.Contain("mapcount is 1"));
        Assert.That(() => memory.Free(pfn), Throws.TypeOf<FrameStateException>().With.Message.Contains("mapcount is 1"));
        Assert.That(memory.Frame(pfn).RefCount, Is.EqualTo(1));
        Assert.That(memory.IsFree(pfn), Is.False);

        Assert.That(memory.DecrementMapCount(pfn), Is.Zero);
        Assert.That(memory.Put(pfn), Is.True);
    }

    [Test]
    public void MapCountBelowZero_Throws()
    {
        using var memory = TestMemory.Create();
        var pfn = memory.Allocate(0);
        Assert.That(
            () => memory.DecrementMapCount(pfn),
            Throws.TypeOf<FrameStateException>().With.Message.Contains(pfn.ToString()).And.Message.Contains("mapcount is 0"));
        Assert.That(memory.Frame(pfn).MapCount, Is.Zero);
    }

    [Test]
    public void MappingOrGettingAFreeFrame_Throws()
    {
        using var memory = TestMemory.Create();
        var pfn = new Pfn(42);
        Assert.That(
            () => memory.IncrementMapCount(pfn),
            Throws.TypeOf<FrameStateException>().With.Message.Contains("pfn:0x2a").And.Message.Contains("refcount is 0"));
        Assert.That(
            () => memory.Get(pfn),
            Throws.TypeOf<FrameStateException>().With.Message.Contains("pfn:0x2a").And.Message.Contains("refcount is 0"));
        Assert.That(memory.TryGet(pfn), Is.False);
        Assert.That(memory.Frame(pfn).RefCount, Is.Zero);
        Assert.That(memory.Frame(pfn).MapCount, Is.Zero);
    }

    [Test]
    public void TryGet_TakesAReferenceOnAnAllocatedFrame()
    {
        using var memory = TestMemory.Create();
        var pfn = memory.Allocate(0);
        Assert.That(memory.TryGet(pfn), Is.True);
        Assert.That(memory.Frame(pfn).RefCount, Is.EqualTo(2));
    }

    [Test]
    public void FreeingAFrameStillOnAnLruOrLocked_Throws()
    {
        using var memory = TestMemory.Create();
        var pfn = memory.Allocate(0);
        memory.SetFlags(pfn, FrameFlags.Lru | FrameFlags.Dirty);
        Assert.That(
            () => memory.Put(pfn),
            Throws.TypeOf<FrameStateException>().With.Message.Contains(pfn.ToString()).And.Message.Contains("Lru"));
        memory.ClearFlags(pfn, FrameFlags.Lru);

        Assert.That(memory.TestAndSetFlag(pfn, FrameFlags.Locked), Is.False, "trylock succeeds");
        Assert.That(memory.TestAndSetFlag(pfn, FrameFlags.Locked), Is.True, "second trylock fails");
        Assert.That(() => memory.Free(pfn), Throws.TypeOf<FrameStateException>().With.Message.Contains("Locked"));
        Assert.That(memory.TestAndClearFlag(pfn, FrameFlags.Locked), Is.True);

        Assert.That(memory.Put(pfn), Is.True, "Dirty is allowed at free");
        Assert.That(memory.Frame(pfn).Flags, Is.EqualTo(FrameFlags.Free), "free frames carry no stale flags");
    }

    [Test]
    public void AllocatorOwnedOrCompoundFlags_AreRejectedFromCallers()
    {
        using var memory = TestMemory.Create();
        var pfn = memory.Allocate(0);
        Assert.That(
            () => memory.SetFlags(pfn, FrameFlags.Free | FrameFlags.Dirty),
            Throws.ArgumentException.With.Message.Contains("Free").And.Message.Contains("only the allocator"));
        Assert.That(() => memory.ClearFlags(pfn, FrameFlags.Poisoned), Throws.ArgumentException);
        Assert.That(
            () => memory.TestAndSetFlag(pfn, FrameFlags.Dirty | FrameFlags.Accessed),
            Throws.ArgumentException.With.Message.Contains("exactly one flag"));
        Assert.That(memory.Frame(pfn).Flags, Is.EqualTo(FrameFlags.None));
    }

    [Test]
    public void ReverseMapFields_AreResetWhenTheFrameIsFreedAndReallocated()
    {
        using var memory = TestMemory.Create();
        var pfn = memory.Allocate(0);
        ref var frame = ref memory.Frame(pfn);
        frame.SetAnonRmap(7, 0x1234);
        frame.SwapSlot = 99;
        Assert.That(memory.Frame(pfn).RmapOwner, Is.EqualTo(7));
        Assert.That(memory.Frame(pfn).RmapIndex, Is.EqualTo(0x1234UL));
        memory.Frame(pfn).SetKsmRmap(5);
        Assert.That(memory.Frame(pfn).Has(FrameFlags.Ksm), Is.True);
        Assert.That(memory.Frame(pfn).RmapOwner, Is.EqualTo(FrameInfo.NoOwner));
        memory.Frame(pfn).ClearRmap();
        Assert.That(memory.Frame(pfn).Has(FrameFlags.Ksm), Is.False);
        memory.Frame(pfn).SetAnonRmap(7, 0x1234);

        memory.Put(pfn);
        Assert.That(memory.Frame(pfn).RmapOwner, Is.EqualTo(FrameInfo.NoOwner));
        Assert.That(memory.Frame(pfn).SwapSlot, Is.EqualTo(FrameInfo.NoSwapSlot));
        Assert.That(memory.Allocate(0), Is.EqualTo(pfn));
        Assert.That(memory.Frame(pfn).RmapIndex, Is.Zero);
    }
}
