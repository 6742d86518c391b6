using Hypervisor.Notifier.Tests.Support;
using Hypervisor.Notifier.Tracing;

namespace Hypervisor.Notifier.Tests.Chain;

/// <summary>The chain's historical eras: each re-creates its race, and today's contract closes it.</summary>
public class NotifierEraTests
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(10);

    [Test]
    public void ANewChainFollowsTodaysContract()
    {
        Assert.That(new TestMm().Notifiers.Era, Is.EqualTo(NotifierEra.Current));
    }

    [Test]
    public void AnUndefinedEraIsRefusedByName()
    {
        Assert.That(() => new TestMm((NotifierEra)42),
            Throws.TypeOf<ArgumentOutOfRangeException>().With.Message.Contains("42").And.Message.Contains(nameof(NotifierEra.Current)));
    }

    [TestCase(NotifierEra.ReleaseAfterUnlink, false)]
    [TestCase(NotifierEra.UnlinkClaimsRelease, false)]
    [TestCase(NotifierEra.Current, true)]
    public void AnInvalidationIssuedWhileExitReleasesReachesTheSubscriberOnlyToday(NotifierEra era, bool reached)
    {
        var mm = new TestMm(era);
        var probe = new ReleaseProbe();
        var subscription = mm.Notifiers.Register(probe);
        var listedDuringRelease = true;
        probe.OnRelease = () =>
        {
            // The 2012 window: another CPU's try_to_unmap issues an invalidation while exit is releasing.
            listedDuringRelease = subscription.IsListed;
            var range = Ranges.Of(mm, 0, 1);
            Assert.That(mm.Notifiers.InvalidateRangeStart(ref range), Is.True);
            mm.Notifiers.InvalidateRangeEnd(ref range);
        };

        mm.Notifiers.Release();

        Assert.Multiple(() =>
        {
            Assert.That(listedDuringRelease, Is.EqualTo(reached), "listed while its release runs");
            Assert.That(probe.Starts, Is.EqualTo(reached ? 1 : 0), "the invalidation issued inside the window");
            Assert.That(probe.Releases, Is.EqualTo(1));
            Assert.That(subscription.IsListed, Is.False);
        });
    }

    [Test]
    public void ReleaseAfterUnlinkUnlinksEachSubscriberJustBeforeItsRelease()
    {
        var mm = new TestMm(NotifierEra.ReleaseAfterUnlink);
        var older = new ReleaseProbe();
        var newer = new ReleaseProbe();
        mm.Notifiers.Register(older);
        mm.Notifiers.Register(newer);
        var countsAtRelease = new List<int>();
        older.OnRelease = () => countsAtRelease.Add(mm.Notifiers.SubscriberCount);
        newer.OnRelease = () => countsAtRelease.Add(mm.Notifiers.SubscriberCount);

        mm.Notifiers.Release();

        // Newest first, as the list is walked: the newer is unlinked (one left), then the older (none left).
        Assert.That(countsAtRelease, Is.EqualTo(new[] { 1, 0 }));
    }

    [TestCase(NotifierEra.ReleaseAfterUnlink, false)]
    [TestCase(NotifierEra.UnlinkClaimsRelease, false)]
    [TestCase(NotifierEra.Current, true)]
    public void UnregisterReleasesWhileListedOnlyToday(NotifierEra era, bool listed)
    {
        var mm = new TestMm(era);
        var probe = new ReleaseProbe();
        var subscription = mm.Notifiers.Register(probe);
        var listedDuringRelease = !listed;
        probe.OnRelease = () => listedDuringRelease = subscription.IsListed;

        mm.Notifiers.Unregister(subscription);

        Assert.That(listedDuringRelease, Is.EqualTo(listed));
        Assert.That(probe.Releases, Is.EqualTo(1));
    }

    [Test]
    public void UnlinkClaimsReleaseLetsAnExitInsideUnregistersReleaseFinishWithoutWaiting()
    {
        // The 2013 race on one thread: unregister's release runs outside the read side, so an exit issued from inside it
        // finds nothing listed and its synchronize has nothing to wait for (today it would wait for the release).
        var mm = new TestMm(NotifierEra.UnlinkClaimsRelease);
        var probe = new ReleaseProbe();
        var subscription = mm.Notifiers.Register(probe);
        probe.OnRelease = () => mm.Notifiers.Release();

        mm.Notifiers.Unregister(subscription);

        Assert.That(probe.Releases, Is.EqualTo(1), "claimed by the unlink: exit did not release it again");
        Assert.That(mm.Notifiers.IsExiting, Is.True);
    }

    [Test]
    public void TodayAnExitRacingUnregisterWaitsForItsReleaseAndReleasesOnce()
    {
        var mm = new TestMm();
        var probe = new ReleaseProbe();
        var subscription = mm.Notifiers.Register(probe);
        Task? exit = null;
        var exitWaited = false;
        probe.OnRelease = () =>
        {
            exit = Task.Run(mm.Notifiers.Release);
            exitWaited = SpinWait.SpinUntil(() => mm.Notifiers.IsWaitingForGracePeriod, Bound);
            Assert.That(exit.IsCompleted, Is.False, "exit returned while unregister's release was running");
        };

        mm.Notifiers.Unregister(subscription);

        Assert.That(exitWaited, Is.True, "exit's synchronize waited for unregister's release");
        Assert.That(exit!.Wait(Bound), Is.True);
        Assert.That(probe.Releases, Is.EqualTo(1));
        Assert.That(mm.Notifiers.IsWaitingForGracePeriod, Is.False);
    }

    [Test]
    public void ThePostChangeInvalidateDeliversStartAndEndBackToBack()
    {
        var mm = new TestMm(NotifierEra.NoRangeStartEnd);
        var recorder = new NotifierEventRecorder();
        mm.Notifiers.Register(recorder);
        var range = Ranges.Of(mm, 2, 4);

        mm.Notifiers.InvalidateRange(ref range);

        Assert.That(recorder.Kinds, Is.EqualTo(new[] { NotifierTraceKind.InvalidateRangeStart, NotifierTraceKind.InvalidateRangeEnd }));
        Assert.That(mm.Notifiers.Stats.Starts, Is.EqualTo(1));
        Assert.That(mm.Notifiers.Stats.Ends, Is.EqualTo(1));
    }

    [TestCase(NotifierEra.Current)]
    [TestCase(NotifierEra.ReleaseAfterUnlink)]
    public void OnlyThe2008EraTakesAPostChangeInvalidate(NotifierEra era)
    {
        var mm = new TestMm(era);
        var range = Ranges.Of(mm, 0, 1);

        Assert.That(() => mm.Notifiers.InvalidateRange(ref range),
            Throws.TypeOf<NotifierContractException>().With.Message.Contains(nameof(NotifierEra.NoRangeStartEnd)).And.Message.Contains(era.ToString()));
    }

    [Test]
    public void WaitingForGracePeriodIsTrueOnlyWhileASectionInFlightHoldsSynchronize()
    {
        var mm = new TestMm();
        mm.Notifiers.Register(new NotifierEventRecorder());
        var range = Ranges.Of(mm, 0, 1);
        mm.Notifiers.InvalidateRangeStart(ref range); // a start..end pair holds a read-side section until its end
        Assert.That(mm.Notifiers.IsWaitingForGracePeriod, Is.False);

        var synchronize = Task.Run(mm.Notifiers.Synchronize);
        Assert.That(SpinWait.SpinUntil(() => mm.Notifiers.IsWaitingForGracePeriod, Bound), Is.True);
        mm.Notifiers.InvalidateRangeEnd(ref range);

        Assert.That(synchronize.Wait(Bound), Is.True);
        Assert.That(mm.Notifiers.IsWaitingForGracePeriod, Is.False);
    }
}
