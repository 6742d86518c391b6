using Hypervisor.HostMm.Frames;
using Hypervisor.Notifier;

namespace Hypervisor.HostMm.Tests.Frames;

public sealed class AuditTests
{
    [Test]
    public void FreedFrame_IsPoisonedAndFlagged()
    {
        using var memory = TestMemory.Create(audit: true);
        var pfn = memory.Allocate(0, AllocationFlags.Zero);
        memory.Put(pfn);
        Assert.That(memory.FrameBytes(pfn).ContainsAnyExcept(HostMemory.PoisonByte), Is.False);
        Assert.That(memory.Frame(pfn).Flags, Is.EqualTo(FrameFlags.Free | FrameFlags.Poisoned));
    }

    [Test]
    public void PoisonedFrameLeftAlone_IsReallocatedWithoutComplaint()
    {
        using var memory = TestMemory.Create(audit: true);
        var pfn = memory.Allocate(0);
        memory.Put(pfn);
        Assert.That(memory.Allocate(0), Is.EqualTo(pfn));
        Assert.That(memory.Frame(pfn).Flags, Is.EqualTo(FrameFlags.None), "Poisoned is dropped on hand-out");
        memory.Put(pfn);
        Assert.That(memory.Allocate(0, AllocationFlags.Zero), Is.EqualTo(pfn));
        Assert.That(memory.FrameBytes(pfn).ContainsAnyExcept((byte)0), Is.False);
        Assert.That(memory.GetStats().UseAfterFreeDetections, Is.Zero);
    }

    [Test]
    public void WriteToAFreedFrame_IsCaughtWhenTheFrameComesBack()
    {
        using var memory = TestMemory.Create(audit: true);
        var victim = memory.Allocate(1, AllocationFlags.ExactNode);
        var bystander = memory.Allocate(1, AllocationFlags.ExactNode);
        memory.Put(victim);
        memory.Put(bystander);
        memory.FrameBytes(victim)[100] = 0x00; // the use after free

        UseAfterFreeException? caught = null;
        var handedOut = new List<Pfn>();
        for (var i = 0; i < 8192 && caught is null; i++)
        {
            try
            {
                handedOut.Add(memory.Allocate(1, AllocationFlags.ExactNode | AllocationFlags.Zero));
            }
            catch (UseAfterFreeException ex)
            {
                caught = ex;
            }
        }

        Assert.That(caught, Is.Not.Null);
        Assert.That(caught!.Pfn, Is.EqualTo(victim));
        Assert.That(caught.CorruptOffset, Is.EqualTo(100));
        Assert.That(caught.Message, Does.Contain(victim.ToString()).And.Contain("offset 0x64").And.Contain("quarantined"));
        Assert.That(handedOut, Does.Contain(bystander).And.Not.Contain(victim));

        var stats = memory.GetStats();
        Assert.That(stats.UseAfterFreeDetections, Is.EqualTo(1));
        Assert.That(memory.IsFree(victim), Is.False);
        Assert.That(memory.Frame(victim).Flags, Is.EqualTo(FrameFlags.Reserved | FrameFlags.Poisoned));
        Assert.That(() => memory.Put(victim), Throws.TypeOf<FrameStateException>());
        Assert.That(() => memory.AssertNotFree(victim, "test"), Throws.TypeOf<UseAfterFreeException>());

        // The quarantined frame never comes back: the rest of node 1 drains without it.
        while (memory.TryAllocate(1, AllocationFlags.ExactNode, out var pfn))
        {
            Assert.That(pfn, Is.Not.EqualTo(victim));
            handedOut.Add(pfn);
        }

        Assert.That(handedOut, Has.Count.EqualTo(8191));
        Assert.That(memory.GetStats().AllocatedFrames, Is.EqualTo(8191));
    }

    [Test]
    public void AssertNotFree_NamesThePfnAndTheUser()
    {
        using var memory = TestMemory.Create();
        var pfn = memory.Allocate(0);
        Assert.That(() => memory.AssertNotFree(pfn, "ept-audit"), Throws.Nothing);
        memory.Put(pfn);
        var ex = Assert.Throws<UseAfterFreeException>(() => memory.AssertNotFree(pfn, "ept-audit"));
        Assert.That(ex!.Message, Does.Contain(pfn.ToString()).And.Contain("ept-audit").And.Contain("free"));
        Assert.That(ex.User, Is.EqualTo("ept-audit"));
        Assert.That(ex.Pfn, Is.EqualTo(pfn));
    }

    [Test]
    public void WithoutAudit_FreedFramesAreNeitherPoisonedNorChecked()
    {
        using var memory = TestMemory.Create(audit: false);
        var pfn = memory.Allocate(0);
        memory.FrameBytes(pfn).Fill(0x11);
        memory.Put(pfn);
        Assert.That(memory.Frame(pfn).Flags, Is.EqualTo(FrameFlags.Free));
        Assert.That(memory.FrameBytes(pfn)[0], Is.EqualTo(0x11));
        memory.FrameBytes(pfn)[0] = 0x22;
        Assert.That(memory.Allocate(0), Is.EqualTo(pfn));
    }

    [Test]
    public void CopyIntoAFreeFrame_IsAUseAfterFree()
    {
        using var memory = TestMemory.Create();
        var source = memory.Allocate(0);
        var target = memory.Allocate(0);
        memory.Put(target);
        Assert.That(
            () => memory.CopyFrame(source, target),
            Throws.TypeOf<UseAfterFreeException>().With.Message.Contains(target.ToString()).And.Message.Contains("CopyFrame (destination)"));
    }
}
