using Hypervisor.Notifier.Tests.Support;
using Hypervisor.Notifier.Tracing;

namespace Hypervisor.Notifier.Tests.Chain;

public class GetPutTests
{
    [Test]
    public void GetSharesOneSubscriptionPerMmAndAllocator()
    {
        var mm = new TestMm();
        var other = new TestMm();
        var allocator = new CountingAllocator();

        var first = mm.Notifiers.Get(allocator);
        var second = mm.Notifiers.Get(allocator);
        var elsewhere = other.Notifiers.Get(allocator);

        Assert.That(second, Is.SameAs(first));
        Assert.That(elsewhere, Is.Not.SameAs(first));
        Assert.That(allocator.Allocated, Is.EqualTo(2));
        Assert.That(mm.Notifiers.SubscriberCount, Is.EqualTo(1));
    }

    [Test]
    public void LastPutUnlistsWithoutReleaseAndFreesAfterAGracePeriod()
    {
        var mm = new TestMm();
        var allocator = new CountingAllocator();
        var subscription = mm.Notifiers.Get(allocator);
        mm.Notifiers.Get(allocator);

        mm.Notifiers.Put(subscription);
        Assert.That(subscription.IsListed, Is.True, "one reference is left");

        mm.Notifiers.Put(subscription);
        Assert.That(subscription.IsListed, Is.False);
        mm.Notifiers.Synchronize();

        Assert.That(allocator.Freed, Is.EqualTo(1));
        Assert.That(((NotifierEventRecorder)subscription.Notifier).Count(NotifierTraceKind.Release), Is.Zero, "put never calls release");
    }

    [Test]
    public void FreeWaitsForACallbackInFlight()
    {
        var mm = new TestMm();
        var blocking = new BlockingNotifier();
        var allocator = new FixedAllocator(blocking);
        var subscription = mm.Notifiers.Get(allocator);
        var pair = Task.Run(() => Ranges.StartEnd(mm, 0, 1));
        Assert.That(blocking.WaitEntered(TimeSpan.FromSeconds(10)), Is.True);

        var epoch = mm.Notifiers.ReadSide.Epoch;
        mm.Notifiers.Put(subscription);
        Assert.That(Reached.GracePeriodBegan(mm.Notifiers.ReadSide, epoch), Is.True, "the deferred free waits for a grace period");
        Assert.That(allocator.Freed, Is.Zero, "the subscriber's start is still running");
        Assert.That(mm.Notifiers.ReadSide.PendingCallbacks, Is.EqualTo(1));
        Assert.That(blocking.InCallback, Is.True);

        blocking.Open();
        Assert.That(pair.Wait(Reached.Bound), Is.True);
        mm.Notifiers.Synchronize();
        Assert.That(allocator.Freed, Is.EqualTo(1));
        Assert.That(allocator.FreedWhileInCallback, Is.False);
    }

    [Test]
    public void GetAfterLastPutMakesAFreshSubscription()
    {
        var mm = new TestMm();
        var allocator = new CountingAllocator();
        var first = mm.Notifiers.Get(allocator);
        mm.Notifiers.Put(first);

        var second = mm.Notifiers.Get(allocator);

        Assert.That(second, Is.Not.SameAs(first));
        Assert.That(allocator.Allocated, Is.EqualTo(2));
    }

    [Test]
    public void MixingGetPutWithRegisterUnregisterIsRejected()
    {
        var mm = new TestMm();
        var allocator = new CountingAllocator();
        var fromGet = mm.Notifiers.Get(allocator);
        var fromRegister = mm.Notifiers.Register(new NotifierEventRecorder());

        Assert.That(() => mm.Notifiers.Unregister(fromGet), Throws.TypeOf<SubscriptionStateException>().With.Message.Contains("Put"));
        Assert.That(() => mm.Notifiers.Put(fromRegister), Throws.TypeOf<SubscriptionStateException>().With.Message.Contains("Unregister"));

        mm.Notifiers.Put(fromGet);
        Assert.That(() => mm.Notifiers.Put(fromGet), Throws.TypeOf<SubscriptionStateException>().With.Message.Contains("no references left"));
    }

    [Test]
    public void GetAfterExitIsRefusedAndExitReleasesGetSubscriptions()
    {
        var mm = new TestMm();
        var allocator = new CountingAllocator();
        var subscription = mm.Notifiers.Get(allocator);

        mm.Notifiers.Release();

        Assert.That(((NotifierEventRecorder)subscription.Notifier).Count(NotifierTraceKind.Release), Is.EqualTo(1));
        Assert.That(() => mm.Notifiers.Get(allocator), Throws.TypeOf<MmExitedException>());
        mm.Notifiers.Put(subscription);
        mm.Notifiers.Synchronize();
        Assert.That(allocator.Freed, Is.EqualTo(1));
    }

    private sealed class CountingAllocator : IMmuNotifierAllocator
    {
        private int _allocated;
        private int _freed;

        public int Allocated => Volatile.Read(ref _allocated);

        public int Freed => Volatile.Read(ref _freed);

        public IMmuNotifier Allocate(IMm mm)
        {
            Interlocked.Increment(ref _allocated);
            return new NotifierEventRecorder();
        }

        public void Free(IMmuNotifier notifier) => Interlocked.Increment(ref _freed);
    }

    private sealed class FixedAllocator(BlockingNotifier notifier) : IMmuNotifierAllocator
    {
        private int _freed;

        public int Freed => Volatile.Read(ref _freed);

        public bool FreedWhileInCallback { get; private set; }

        public IMmuNotifier Allocate(IMm mm) => notifier;

        public void Free(IMmuNotifier freed)
        {
            FreedWhileInCallback |= notifier.InCallback;
            Interlocked.Increment(ref _freed);
        }
    }
}
