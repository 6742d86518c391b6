using Hypervisor.HostMm.Vmas;
using Hypervisor.Notifier;
using static Hypervisor.HostMm.Tests.Processes.TestHosts;

namespace Hypervisor.HostMm.Tests.Processes;

/// <summary>
/// The <see cref="Invalidation"/> scope: every successful start gets exactly one end, on every way out of the
/// body, and a start that did not succeed gets none.
/// </summary>
public class InvalidationScopeTests
{
    [Test]
    public void TheEndIsSentOnceWhenTheScopeEndsAndNotBefore()
    {
        using var host = Create();
        var mm = host.CreateMm();
        var start = mm.Mmap(Page, Protection.Read | Protection.Write);
        var counter = new PairCountingNotifier();
        mm.Notifiers.Register(counter);

        using (var invalidation = Invalidation.Begin(mm, start, start + Page, NotifierEvent.Clear))
        {
            Assert.That(invalidation.Started, Is.True);
            Assert.That((counter.Starts, counter.Ends), Is.EqualTo((1, 0)), "start sent, end still owed inside the body");
            invalidation.Dispose();
            Assert.That(invalidation.Started, Is.False);
            Assert.That((counter.Starts, counter.Ends), Is.EqualTo((1, 1)));
        }

        Assert.That((counter.Starts, counter.Ends), Is.EqualTo((1, 1)), "disposing an ended scope again sends nothing");
        Assert.That((mm.Notifiers.Stats.Starts, mm.Notifiers.Stats.Ends), Is.EqualTo((1L, 1L)));
    }

    [Test]
    public void ABodyThatThrowsStillGetsItsEndExactlyOnce()
    {
        using var host = Create();
        var mm = host.CreateMm();
        var start = mm.Mmap(Page, Protection.Read | Protection.Write);
        var counter = new PairCountingNotifier();
        mm.Notifiers.Register(counter);

        Assert.That(
            () =>
            {
                using var invalidation = Invalidation.Begin(mm, start, start + Page, NotifierEvent.Unmap);
                throw new InvalidOperationException("body failed");
            },
            Throws.InvalidOperationException.With.Message.EqualTo("body failed"));

        Assert.That((counter.Starts, counter.Ends), Is.EqualTo((1, 1)));
        Assert.That(mm.Notifiers.Stats.Ends, Is.EqualTo(1));
        AssertReadSideReleased(mm);
    }

    [Test]
    public void ARefusedNonBlockableStartYieldsNoEnd()
    {
        using var host = Create();
        var mm = host.CreateMm();
        var start = mm.Mmap(Page, Protection.Read | Protection.Write);
        var counter = new PairCountingNotifier();
        var refuser = new RefusingStartNotifier();
        mm.Notifiers.Register(counter);
        mm.Notifiers.Register(refuser);

        using (var invalidation = Invalidation.BeginNonBlocking(mm, start, start + Page, NotifierEvent.Unmap))
        {
            Assert.That(invalidation.Started, Is.False, "the caller sees the refusal");
            Assert.That(refuser.Starts, Is.EqualTo(1));
            Assert.That((counter.Starts, counter.Ends), Is.EqualTo((1, 1)), "the chain ends the subscriber that accepted, at once");
        }

        Assert.That((counter.Starts, counter.Ends), Is.EqualTo((1, 1)), "disposing a refused scope sends no end");
        Assert.That(mm.Notifiers.Stats.Ends, Is.Zero);
        Assert.That(mm.Notifiers.Stats.FailedStarts, Is.EqualTo(1));
        AssertReadSideReleased(mm);
    }

    [Test]
    public void AnAcceptedNonBlockableStartIsPairedLikeABlockableOne()
    {
        using var host = Create();
        var mm = host.CreateMm();
        var start = mm.Mmap(Page, Protection.Read | Protection.Write);
        var counter = new PairCountingNotifier();
        mm.Notifiers.Register(counter);
        mm.Notifiers.Register(new RefusingStartNotifier { Refuse = false });

        using (var invalidation = Invalidation.BeginNonBlocking(mm, start, start + Page, NotifierEvent.Unmap))
        {
            Assert.That(invalidation.Started, Is.True);
            Assert.That(counter.Open, Is.EqualTo(1));
        }

        Assert.That((counter.Starts, counter.Ends), Is.EqualTo((1, 1)));
    }

    [Test]
    public void ARefusedBlockableStartThrowsAndOwesNoEnd()
    {
        using var host = Create();
        var mm = host.CreateMm();
        var start = mm.Mmap(Page, Protection.Read | Protection.Write);
        var counter = new PairCountingNotifier();
        mm.Notifiers.Register(counter);
        mm.Notifiers.Register(new RefusingStartNotifier());

        Assert.That(
            () =>
            {
                using var invalidation = Invalidation.Begin(mm, start, start + Page, NotifierEvent.Clear);
            },
            Throws.TypeOf<NotifierContractException>().With.Message.Contains("refused a blockable start"));

        Assert.That(mm.Notifiers.Stats.Ends, Is.Zero, "no end for a start that did not succeed");
        Assert.That(counter.Open, Is.Zero, "the subscriber that accepted was ended by the chain");
        AssertReadSideReleased(mm);
    }

    [Test]
    public void EveryHostOperationLeavesNoPairOpen()
    {
        using var host = Create();
        var parent = host.CreateMm();
        var counter = new PairCountingNotifier();
        parent.Notifiers.Register(counter);
        var start = parent.Mmap(8 * Page, Protection.Read | Protection.Write, MmapFlags.Populate);
        using var child = parent.Fork();
        Assert.That(parent.HandleFault(start, FaultAccess.Write), Is.EqualTo(FaultResult.CopyOnWrite));
        parent.Mprotect(start, 2 * Page, Protection.Read);
        parent.Madvise(start + (2 * Page), Page, Advice.DontNeed);
        parent.Madvise(start + (3 * Page), Page, Advice.Free);
        parent.Mmap(Page, Protection.Read, MmapFlags.Fixed, start + (8 * Page)); // block growth in place
        var moved = parent.Mremap(start + (4 * Page), 4 * Page, 8 * Page, MremapFlags.MayMove);
        parent.Munmap(moved, 8 * Page);

        // fork, COW, mprotect, DONTNEED, FREE, mremap's move and munmap: one pair each at least.
        Assert.That(counter.Starts, Is.GreaterThanOrEqualTo(7));
        Assert.That(counter.Ends, Is.EqualTo(counter.Starts));
        Assert.That(parent.Notifiers.Stats.Ends, Is.EqualTo(parent.Notifiers.Stats.Starts));
        AssertConsistent(host);
    }

    /// <summary>A register waits for every open read-side section: it returns in bounded time only if the scope released its own.</summary>
    private static void AssertReadSideReleased(Mm mm)
    {
        var register = Task.Run(() => mm.Notifiers.Register(new PairCountingNotifier()));
        Assert.That(register.Wait(TimeSpan.FromSeconds(10)), Is.True, "a read-side section was left open");
    }
}
