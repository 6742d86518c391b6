using Hypervisor.Notifier.Intervals;
using Hypervisor.Notifier.Tests.Support;
using Hypervisor.Notifier.Tracing;

namespace Hypervisor.Notifier.Tests.Chain;

public class IntervalNotifierTests
{
    [Test]
    public void OverlappingStartCallsTheIntervalWithAnOddSequenceBeforeListedSubscribers()
    {
        var mm = new TestMm();
        var order = new List<string>();
        var interval = new SequenceProbe(order);
        mm.Notifiers.InsertInterval(Ranges.Page(10), 4 * Paging.PageSize, interval);
        mm.Notifiers.Register(new OrderNotifier(order));

        Ranges.StartEnd(mm, 12, 1);

        Assert.That(order, Is.EqualTo(new[] { "interval", "start", "end" }));
        Assert.That(interval.LastSequence % 2, Is.EqualTo(1UL), "an invalidation holds the tree: odd sequence");
        Assert.That(mm.Notifiers.Stats.IntervalSequence % 2, Is.Zero, "idle again after the end");
    }

    [Test]
    public void OnlyOverlappingIntervalsAreInvalidated()
    {
        var mm = new TestMm();
        var below = new NotifierEventRecorder();
        var inside = new NotifierEventRecorder();
        var above = new NotifierEventRecorder();
        mm.Notifiers.InsertInterval(Ranges.Page(0), 4 * Paging.PageSize, below);      // pages 0..3
        mm.Notifiers.InsertInterval(Ranges.Page(4), 4 * Paging.PageSize, inside);     // pages 4..7
        mm.Notifiers.InsertInterval(Ranges.Page(8), 4 * Paging.PageSize, above);      // pages 8..11

        Ranges.StartEnd(mm, 4, 4); // exactly [4, 8): end is exclusive

        Assert.That(below.Events, Is.Empty);
        Assert.That(inside.Kinds, Is.EqualTo(new[] { NotifierTraceKind.IntervalInvalidate }));
        Assert.That(above.Events, Is.Empty);
    }

    [Test]
    public void ReadRetryIsTrueOnlyAfterAnOverlappingInvalidation()
    {
        var mm = new TestMm();
        var subscription = mm.Notifiers.InsertInterval(Ranges.Page(0), 8 * Paging.PageSize, new NotifierEventRecorder());

        var sequence = subscription.ReadBegin();
        Ranges.StartEnd(mm, 100, 1);
        Assert.That(subscription.ReadRetry(sequence), Is.False, "a range elsewhere does not disturb the reader");

        Ranges.StartEnd(mm, 3, 1);
        Assert.That(subscription.ReadRetry(sequence), Is.True);
        Assert.That(subscription.CheckRetry(sequence), Is.True);

        var again = subscription.ReadBegin();
        Assert.That(subscription.ReadRetry(again), Is.False);
    }

    [Test]
    public void ReadBeginWaitsForAnInFlightInvalidationOfItsInterval()
    {
        var mm = new TestMm();
        var subscription = mm.Notifiers.InsertInterval(Ranges.Page(0), 8 * Paging.PageSize, new NotifierEventRecorder());
        var range = Ranges.Of(mm, 2, 1);
        mm.Notifiers.InvalidateRangeStart(ref range);

        var reader = Task.Run(subscription.ReadBegin);
        Assert.That(Reached.SequenceWaiters(mm.Notifiers, 1), Is.True, "the reader sleeps until the sequence moves");
        Assert.That(reader.IsCompleted, Is.False, "the reader must wait for the end");

        mm.Notifiers.InvalidateRangeEnd(ref range);
        Assert.That(reader.Wait(TimeSpan.FromSeconds(10)), Is.True);
        Assert.That(subscription.ReadRetry(reader.Result), Is.False);
    }

    [Test]
    public void ReadBeginDoesNotWaitForAnInvalidationElsewhere()
    {
        var mm = new TestMm();
        var subscription = mm.Notifiers.InsertInterval(Ranges.Page(0), 8 * Paging.PageSize, new NotifierEventRecorder());
        mm.Notifiers.InsertInterval(Ranges.Page(64), 8 * Paging.PageSize, new NotifierEventRecorder());
        var range = Ranges.Of(mm, 64, 1);
        mm.Notifiers.InvalidateRangeStart(ref range);

        var reader = Task.Run(subscription.ReadBegin);
        Assert.That(reader.Wait(TimeSpan.FromSeconds(10)), Is.True);
        mm.Notifiers.InvalidateRangeEnd(ref range);
        Assert.That(subscription.ReadRetry(reader.Result), Is.False);
    }

    [Test]
    public void InsertDuringAnInvalidationIsDeferredAndReadersWaitForTheEnd()
    {
        var mm = new TestMm();
        mm.Notifiers.InsertInterval(Ranges.Page(0), 8 * Paging.PageSize, new NotifierEventRecorder());
        var range = Ranges.Of(mm, 0, 16);
        mm.Notifiers.InvalidateRangeStart(ref range);

        var late = new NotifierEventRecorder();
        var subscription = mm.Notifiers.InsertInterval(Ranges.Page(4), Paging.PageSize, late);
        Assert.That(mm.Notifiers.Stats.Intervals, Is.EqualTo(1), "deferred: not in the tree yet");
        var reader = Task.Run(subscription.ReadBegin);
        Assert.That(Reached.SequenceWaiters(mm.Notifiers, 1), Is.True, "the reader of the deferred interval sleeps until the end");
        Assert.That(reader.IsCompleted, Is.False);

        mm.Notifiers.InvalidateRangeEnd(ref range);
        Assert.That(reader.Wait(TimeSpan.FromSeconds(10)), Is.True);
        Assert.That(mm.Notifiers.Stats.Intervals, Is.EqualTo(2));
        Assert.That(late.Events, Is.Empty, "the deferred interval was not invalidated by the range in flight");

        Ranges.StartEnd(mm, 4, 1);
        Assert.That(late.Kinds, Is.EqualTo(new[] { NotifierTraceKind.IntervalInvalidate }));
    }

    [Test]
    public void RemoveDuringAnInvalidationWaitsForItsEnd()
    {
        var mm = new TestMm();
        var subscription = mm.Notifiers.InsertInterval(Ranges.Page(0), 8 * Paging.PageSize, new NotifierEventRecorder());
        var range = Ranges.Of(mm, 0, 1);
        mm.Notifiers.InvalidateRangeStart(ref range);

        var remove = Task.Run(subscription.Remove);
        Assert.That(Reached.SequenceWaiters(mm.Notifiers, 1), Is.True, "the removal sleeps until the end");
        Assert.That(remove.IsCompleted, Is.False);
        Assert.That(subscription.IsRemoved, Is.True, "marked removed at once");
        Assert.That(mm.Notifiers.Stats.Intervals, Is.EqualTo(1), "but the tree is frozen until the end");
        mm.Notifiers.InvalidateRangeEnd(ref range);
        Assert.That(remove.Wait(TimeSpan.FromSeconds(10)), Is.True);

        Assert.That(mm.Notifiers.Stats.Intervals, Is.Zero);
        Assert.That(subscription.IsRemoved, Is.True);
        Assert.That(() => subscription.Remove(), Throws.TypeOf<SubscriptionStateException>().With.Message.Contains("already removed"));
    }

    [Test]
    public void RemoveOfADeferredInsertCancelsIt()
    {
        var mm = new TestMm();
        mm.Notifiers.InsertInterval(Ranges.Page(0), Paging.PageSize, new NotifierEventRecorder());
        var range = Ranges.Of(mm, 0, 1);
        mm.Notifiers.InvalidateRangeStart(ref range);
        var deferred = mm.Notifiers.InsertInterval(Ranges.Page(5), Paging.PageSize, new NotifierEventRecorder());

        deferred.Remove(); // must not wait: it never reached the tree
        mm.Notifiers.InvalidateRangeEnd(ref range);

        Assert.That(mm.Notifiers.Stats.Intervals, Is.EqualTo(1));
    }

    [Test]
    public void NonBlockableIntervalRefusalFailsTheStartBeforeListedSubscribers()
    {
        var mm = new TestMm();
        var recorder = new NotifierEventRecorder();
        mm.Notifiers.Register(recorder);
        mm.Notifiers.InsertInterval(Ranges.Page(0), Paging.PageSize, new RefusingInterval());

        var range = Ranges.Of(mm, 0, 1, blockable: false);
        Assert.That(mm.Notifiers.InvalidateRangeStart(ref range), Is.False);
        Assert.That(recorder.Events, Is.Empty);
        Assert.That(mm.Notifiers.Stats.IntervalSequence % 2, Is.Zero, "the failed start released the tree");

        var blockable = Ranges.Of(mm, 0, 1);
        Assert.That(mm.Notifiers.InvalidateRangeStart(ref blockable), Is.True, "a blockable range is accepted");
        mm.Notifiers.InvalidateRangeEnd(ref blockable);

        var strict = new TestMm();
        strict.Notifiers.InsertInterval(Ranges.Page(0), Paging.PageSize, new RefusingInterval { RefuseAlways = true });
        var refusedBlockable = Ranges.Of(strict, 0, 1);
        Assert.That(() => strict.Notifiers.InvalidateRangeStart(ref refusedBlockable),
            Throws.TypeOf<NotifierContractException>().With.Message.Contains("refused a blockable start"));
    }

    [Test]
    public void ExitSendsOneReleaseInvalidationOverEverythingToEachInterval()
    {
        var mm = new TestMm();
        var a = new NotifierEventRecorder();
        var b = new NotifierEventRecorder();
        mm.Notifiers.InsertInterval(Ranges.Page(0), Paging.PageSize, a);
        mm.Notifiers.InsertInterval(new Hva(1UL << 46), Paging.PageSize, b);

        mm.Notifiers.Release();

        foreach (var recorder in new[] { a, b })
        {
            var only = recorder.Events.Single();
            Assert.That(only.Kind, Is.EqualTo(NotifierTraceKind.IntervalInvalidate));
            Assert.That(only.Event, Is.EqualTo(NotifierEvent.Release));
            Assert.That(only.Start, Is.EqualTo(Hva.Zero));
            Assert.That(only.End, Is.EqualTo(Hva.AddressSpaceEnd));
        }

        Ranges.StartEnd(mm, 0, 1, NotifierEvent.Unmap);
        Assert.That(a.Count(NotifierTraceKind.IntervalInvalidate), Is.EqualTo(2), "interval subscribers still see the final unmap");
    }

    [Test]
    public void BadIntervalsAreRejected()
    {
        var mm = new TestMm();
        var other = new TestMm();
        Assert.That(() => mm.Notifiers.InsertInterval(Ranges.Page(0), 0, new NotifierEventRecorder()),
            Throws.TypeOf<InvalidRangeException>().With.Message.Contains("length 0"));
        Assert.That(() => mm.Notifiers.InsertInterval(new Hva(0x1234), Paging.PageSize, new NotifierEventRecorder()),
            Throws.TypeOf<InvalidRangeException>().With.Message.Contains("page-aligned"));
        Assert.That(() => mm.Notifiers.InsertInterval(new Hva(ulong.MaxValue - 4095), Paging.PageSize * 2, new NotifierEventRecorder()),
            Throws.TypeOf<InvalidRangeException>());
        var subscription = mm.Notifiers.InsertInterval(Ranges.Page(0), Paging.PageSize, new NotifierEventRecorder());
        Assert.That(() => other.Notifiers.RemoveInterval(subscription), Throws.TypeOf<SubscriptionStateException>());
    }

    private sealed class SequenceProbe(List<string> order) : IIntervalNotifier
    {
        public ulong LastSequence { get; private set; }

        public bool Invalidate(IntervalSubscription subscription, in NotifierRange range, ulong currentSequence)
        {
            subscription.SetSequence(currentSequence);
            LastSequence = currentSequence;
            order.Add("interval");
            return true;
        }
    }

    private sealed class OrderNotifier(List<string> order) : IMmuNotifier
    {
        public bool InvalidateRangeStart(in NotifierRange range)
        {
            order.Add("start");
            return true;
        }

        public void InvalidateRangeEnd(in NotifierRange range) => order.Add("end");
    }

    private sealed class RefusingInterval : IIntervalNotifier
    {
        public bool RefuseAlways { get; init; }

        public bool Invalidate(IntervalSubscription subscription, in NotifierRange range, ulong currentSequence)
        {
            subscription.SetSequence(currentSequence);
            return range.IsBlockable && !RefuseAlways;
        }
    }
}
