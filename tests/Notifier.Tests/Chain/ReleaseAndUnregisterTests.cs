using Hypervisor.Notifier.Tests.Support;
using Hypervisor.Notifier.Tracing;

namespace Hypervisor.Notifier.Tests.Chain;

public class ReleaseAndUnregisterTests
{
    [Test]
    public void ExitReleasesEverySubscriberWhileItIsStillListed()
    {
        var mm = new TestMm();
        var a = new ListedProbe(mm);
        var b = new ListedProbe(mm);
        var subscriptionA = mm.Notifiers.Register(a);
        var subscriptionB = mm.Notifiers.Register(b);

        mm.Notifiers.Release();

        Assert.That(a.ReleasesWhileListed, Is.EqualTo(1));
        Assert.That(b.ReleasesWhileListed, Is.EqualTo(1));
        Assert.That(a.ListedCountAtRelease, Is.EqualTo(2), "both subscribers are still listed while each release runs");
        Assert.That(subscriptionA.IsListed, Is.False);
        Assert.That(subscriptionB.IsListed, Is.False);
        Assert.That(subscriptionA.IsReleased, Is.True);
        Assert.That(mm.Notifiers.SubscriberCount, Is.Zero);
        Assert.That(mm.Notifiers.IsExiting, Is.True);
    }

    [Test]
    public void AfterExitRegistrationAndSecondExitAreRefused()
    {
        var mm = new TestMm();
        mm.Notifiers.Release();

        Assert.That(() => mm.Notifiers.Register(new NotifierEventRecorder()),
            Throws.TypeOf<MmExitedException>().With.Message.Contains($"mm {mm.Id}").And.Message.Contains("registering"));
        Assert.That(() => mm.Notifiers.Release(), Throws.TypeOf<MmExitedException>());
        Assert.That(() => mm.Notifiers.InsertInterval(Ranges.Page(0), Paging.PageSize, new NotifierEventRecorder()),
            Throws.TypeOf<MmExitedException>());
    }

    [Test]
    public void AfterExitRangesNoLongerReachReleasedSubscribers()
    {
        var mm = new TestMm();
        var recorder = new NotifierEventRecorder();
        mm.Notifiers.Register(recorder);
        mm.Notifiers.Release();
        recorder.Clear();

        Assert.That(Ranges.StartEnd(mm, 0, 16, NotifierEvent.Unmap), Is.True, "the host's final unmap still issues start/end");
        Assert.That(recorder.Events, Is.Empty);
    }

    [Test]
    public void EndOfAPairInFlightAtExitIsNotDeliveredToReleasedSubscribers()
    {
        var mm = new TestMm();
        var recorder = new NotifierEventRecorder();
        mm.Notifiers.Register(recorder);
        var range = Ranges.Of(mm, 0, 1);
        mm.Notifiers.InvalidateRangeStart(ref range);

        // Exit synchronizes, so it waits for the pair; run it aside and end the pair.
        var exit = Task.Run(mm.Notifiers.Release);
        Assert.That(SpinWait.SpinUntil(() => recorder.Count(NotifierTraceKind.Release) == 1, TimeSpan.FromSeconds(10)), Is.True);
        mm.Notifiers.InvalidateRangeEnd(ref range);
        Assert.That(exit.Wait(TimeSpan.FromSeconds(10)), Is.True);

        Assert.That(recorder.Kinds, Is.EqualTo(new[] { NotifierTraceKind.InvalidateRangeStart, NotifierTraceKind.Release }));
    }

    [Test]
    public void UnregisterReleasesAListedSubscriberOnce()
    {
        var mm = new TestMm();
        var recorder = new NotifierEventRecorder();
        var subscription = mm.Notifiers.Register(recorder);

        mm.Notifiers.Unregister(subscription);

        Assert.That(recorder.Kinds, Is.EqualTo(new[] { NotifierTraceKind.Release }));
        Assert.That(subscription.IsListed, Is.False);
        Ranges.StartEnd(mm, 0, 1);
        Assert.That(recorder.Count(NotifierTraceKind.InvalidateRangeStart), Is.Zero, "no callback after unregister");
    }

    [Test]
    public void UnregisterAfterExitDoesNotReleaseAgain()
    {
        var mm = new TestMm();
        var recorder = new NotifierEventRecorder();
        var subscription = mm.Notifiers.Register(recorder);
        mm.Notifiers.Release();

        mm.Notifiers.Unregister(subscription);

        Assert.That(recorder.Count(NotifierTraceKind.Release), Is.EqualTo(1));
    }

    [Test]
    public void UnregisterTwiceOrOnAnotherChainIsRejected()
    {
        var mm = new TestMm();
        var other = new TestMm();
        var subscription = mm.Notifiers.Register(new NotifierEventRecorder());

        Assert.That(() => other.Notifiers.Unregister(subscription),
            Throws.TypeOf<SubscriptionStateException>().With.Message.Contains($"not to mm {other.Id}"));
        mm.Notifiers.Unregister(subscription);
        Assert.That(() => mm.Notifiers.Unregister(subscription),
            Throws.TypeOf<SubscriptionStateException>().With.Message.Contains("already unregistered"));
    }

    [Test]
    public void RegisteringTheSameNotifierTwiceIsRejected()
    {
        var mm = new TestMm();
        var recorder = new NotifierEventRecorder();
        mm.Notifiers.Register(recorder);

        Assert.That(() => mm.Notifiers.Register(recorder),
            Throws.TypeOf<SubscriptionStateException>().With.Message.Contains("already registered"));
    }

    [Test]
    public void UnregisterWaitsForTheSubscribersCallbackInFlight()
    {
        var mm = new TestMm();
        var blocking = new BlockingNotifier();
        var subscription = mm.Notifiers.Register(blocking);

        var pair = Task.Run(() => Ranges.StartEnd(mm, 0, 1));
        Assert.That(blocking.WaitEntered(TimeSpan.FromSeconds(10)), Is.True);

        var epoch = mm.Notifiers.ReadSide.Epoch;
        var unregister = Task.Run(() => mm.Notifiers.Unregister(subscription));
        Assert.That(Reached.GracePeriodBegan(mm.Notifiers.ReadSide, epoch), Is.True, "unregister released, unlisted and now synchronizes");
        Assert.That(unregister.IsCompleted, Is.False, "unregister must not return while a callback runs");
        Assert.That(blocking.InCallback, Is.True);

        blocking.Open();
        Assert.That(unregister.Wait(TimeSpan.FromSeconds(10)), Is.True);
        Assert.That(blocking.InCallback, Is.False);
        Assert.That(pair.Wait(TimeSpan.FromSeconds(10)), Is.True);
        Assert.That(blocking.Releases, Is.EqualTo(1));
    }

    [Test]
    public void UnregisterRacingAnExitInsideReleaseWaitsForThatRelease()
    {
        var mm = new TestMm();
        var blocking = new BlockingNotifier { BlockRelease = true, BlockStarts = false };
        var subscription = mm.Notifiers.Register(blocking);

        var exit = Task.Run(mm.Notifiers.Release);
        Assert.That(blocking.WaitEntered(TimeSpan.FromSeconds(10)), Is.True);

        var epoch = mm.Notifiers.ReadSide.Epoch;
        var unregister = Task.Run(() => mm.Notifiers.Unregister(subscription));
        Assert.That(Reached.GracePeriodBegan(mm.Notifiers.ReadSide, epoch), Is.True, "unregister found the release claimed and synchronizes");
        Assert.That(unregister.IsCompleted, Is.False, "the release issued by exit is still running");
        Assert.That(blocking.InCallback, Is.True);

        blocking.Open();
        Assert.That(Task.WaitAll([exit, unregister], TimeSpan.FromSeconds(10)), Is.True);
        Assert.That(blocking.Releases, Is.EqualTo(1), "exactly one release");
    }

    [Test]
    public void SynchronizeWaitsForCallbacksInFlight()
    {
        var mm = new TestMm();
        var blocking = new BlockingNotifier();
        mm.Notifiers.Register(blocking);
        var pair = Task.Run(() => Ranges.StartEnd(mm, 0, 1));
        Assert.That(blocking.WaitEntered(TimeSpan.FromSeconds(10)), Is.True);

        var epoch = mm.Notifiers.ReadSide.Epoch;
        var synchronize = Task.Run(mm.Notifiers.Synchronize);
        Assert.That(Reached.GracePeriodBegan(mm.Notifiers.ReadSide, epoch), Is.True);
        Assert.That(synchronize.IsCompleted, Is.False, "the pair's start is still running");
        blocking.Open();
        Assert.That(synchronize.Wait(TimeSpan.FromSeconds(10)), Is.True);
        Assert.That(pair.Result, Is.True);
        Assert.That(blocking.Ends, Is.EqualTo(1));
    }

    private sealed class ListedProbe(IMm mm) : IMmuNotifier
    {
        public int ReleasesWhileListed { get; private set; }

        public int ListedCountAtRelease { get; private set; }

        public void Release(IMm released)
        {
            var mine = mm.Notifiers.Subscribers.SingleOrDefault(s => ReferenceEquals(s.Notifier, this));
            if (mine is { IsListed: true })
            {
                ReleasesWhileListed++;
            }

            ListedCountAtRelease = mm.Notifiers.Subscribers.Count(s => s.IsListed);
        }
    }
}
