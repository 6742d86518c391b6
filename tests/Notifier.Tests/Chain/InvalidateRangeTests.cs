using Hypervisor.Notifier.Tests.Support;
using Hypervisor.Notifier.Tracing;

namespace Hypervisor.Notifier.Tests.Chain;

public class InvalidateRangeTests
{
    [Test]
    public void StartAndEndReachTheSubscriberWithTheRange()
    {
        var mm = new TestMm();
        var recorder = new NotifierEventRecorder();
        mm.Notifiers.Register(recorder);

        var range = new NotifierRange(mm, new Hva(0x10000), new Hva(0x13000), NotifierEvent.ProtectionVma);
        Assert.That(mm.Notifiers.InvalidateRangeStart(ref range), Is.True);
        mm.Notifiers.InvalidateRangeEnd(ref range);

        var events = recorder.Events;
        Assert.That(events.Select(e => e.Kind), Is.EqualTo(new[] { NotifierTraceKind.InvalidateRangeStart, NotifierTraceKind.InvalidateRangeEnd }));
        Assert.That(events[0].Start, Is.EqualTo(new Hva(0x10000)));
        Assert.That(events[0].End, Is.EqualTo(new Hva(0x13000)));
        Assert.That(events[0].Event, Is.EqualTo(NotifierEvent.ProtectionVma));
        Assert.That(events[0].Blockable, Is.True);
        Assert.That(events[1].Sequence, Is.GreaterThan(events[0].Sequence));
    }

    [Test]
    public void NewestSubscriberIsCalledFirst()
    {
        var mm = new TestMm();
        var order = new List<string>();
        mm.Notifiers.Register(new NamedNotifier("old", order));
        mm.Notifiers.Register(new NamedNotifier("new", order));

        Ranges.StartEnd(mm, 1, 1);

        Assert.That(order, Is.EqualTo(new[] { "start new", "start old", "end new", "end old" }));
    }

    [Test]
    public void OnlyImplementedOpsAreDetectedAndCalled()
    {
        var mm = new TestMm();
        var startOnly = new StartOnlyNotifier();
        var young = new YoungNotifier(answer: true);
        var startOnlySubscription = mm.Notifiers.Register(startOnly);
        var youngSubscription = mm.Notifiers.Register(young);

        Assert.That(startOnlySubscription.Ops, Is.EqualTo(MmuNotifierOps.InvalidateRangeStart));
        Assert.That(youngSubscription.Ops, Is.EqualTo(MmuNotifierOps.ClearFlushYoung | MmuNotifierOps.ClearYoung | MmuNotifierOps.TestYoung));

        Ranges.StartEnd(mm, 0, 4);
        Assert.That(startOnly.Starts, Is.EqualTo(1));
        Assert.That(young.Calls, Is.Zero, "a subscriber without start/end gets neither");
    }

    [Test]
    public void NonBlockableRefusalEndsTheAcceptedAndTellsTheCaller()
    {
        var mm = new TestMm();
        var recorder = new NotifierEventRecorder();
        var refuser = new StartOnlyNotifier { RefuseNonBlockable = true };
        mm.Notifiers.Register(recorder);
        mm.Notifiers.Register(refuser);

        var range = Ranges.Of(mm, 8, 2, NotifierEvent.Unmap, blockable: false);
        Assert.That(mm.Notifiers.InvalidateRangeStart(ref range), Is.False);

        Assert.That(refuser.Starts, Is.EqualTo(1));
        Assert.That(recorder.Kinds, Is.EqualTo(new[] { NotifierTraceKind.InvalidateRangeStart, NotifierTraceKind.InvalidateRangeEnd }),
            "the subscriber that accepted gets its end at once");
        Assert.That(() => mm.Notifiers.InvalidateRangeEnd(ref range), Throws.TypeOf<NotifierContractException>(),
            "after a failed start the caller has no end to issue");
        Assert.That(mm.Notifiers.Stats.FailedStarts, Is.EqualTo(1));
    }

    [Test]
    public void AllStartsAreCalledEvenAfterARefusal()
    {
        var mm = new TestMm();
        var first = new StartOnlyNotifier { RefuseNonBlockable = true };
        var second = new StartOnlyNotifier();
        mm.Notifiers.Register(second);
        mm.Notifiers.Register(first); // called first (newest first)

        var range = Ranges.Of(mm, 0, 1, blockable: false);
        Assert.That(mm.Notifiers.InvalidateRangeStart(ref range), Is.False);
        Assert.That(second.Starts, Is.EqualTo(1));
    }

    [Test]
    public void RefusingABlockableRangeBreaksTheContract()
    {
        var mm = new TestMm();
        mm.Notifiers.Register(new RefuseEverything());
        var range = Ranges.Of(mm, 0, 1);

        Assert.That(() => mm.Notifiers.InvalidateRangeStart(ref range),
            Throws.TypeOf<NotifierContractException>().With.Message.Contains("blockable"));
        Assert.That(() => mm.Notifiers.InvalidateRangeStart(ref range), Throws.TypeOf<NotifierContractException>(),
            "the read side was not left held: the chain still works");
        Assert.That(() => mm.Notifiers.Synchronize(), Throws.Nothing);
    }

    [Test]
    public void EndWithoutStartStartTwiceAndForeignRangesAreRejected()
    {
        var mm = new TestMm();
        var other = new TestMm();
        var range = Ranges.Of(mm, 0, 1);

        Assert.That(() => mm.Notifiers.InvalidateRangeEnd(ref range),
            Throws.TypeOf<NotifierContractException>().With.Message.Contains("end without a successful start"));

        Assert.That(mm.Notifiers.InvalidateRangeStart(ref range), Is.True);
        Assert.That(() => mm.Notifiers.InvalidateRangeStart(ref range),
            Throws.TypeOf<NotifierContractException>().With.Message.Contains("twice"));
        mm.Notifiers.InvalidateRangeEnd(ref range);
        Assert.That(() => mm.Notifiers.InvalidateRangeEnd(ref range), Throws.TypeOf<NotifierContractException>());

        var foreign = Ranges.Of(other, 0, 1);
        Assert.That(() => mm.Notifiers.InvalidateRangeStart(ref foreign),
            Throws.TypeOf<NotifierContractException>().With.Message.Contains($"mm {other.Id}"));
    }

    [Test]
    public void EndReachesOnlySubscribersThatSawTheStart()
    {
        var mm = new TestMm();
        var early = new NotifierEventRecorder();
        mm.Notifiers.Register(early);
        var range = Ranges.Of(mm, 0, 1);
        mm.Notifiers.InvalidateRangeStart(ref range);

        // A registration now would wait for the in-flight pair; do it from another thread.
        var late = new NotifierEventRecorder();
        var epoch = mm.Notifiers.ReadSide.Epoch;
        var registering = Task.Run(() => mm.Notifiers.Register(late));
        Assert.That(Reached.GracePeriodBegan(mm.Notifiers.ReadSide, epoch), Is.True, "register listed the subscriber and synchronizes");
        Assert.That(registering.IsCompleted, Is.False, "register waits for the in-flight pair");
        Assert.That(mm.Notifiers.SubscriberCount, Is.EqualTo(2));

        mm.Notifiers.InvalidateRangeEnd(ref range);
        Assert.That(registering.Wait(TimeSpan.FromSeconds(10)), Is.True);

        Assert.That(early.Kinds, Is.EqualTo(new[] { NotifierTraceKind.InvalidateRangeStart, NotifierTraceKind.InvalidateRangeEnd }));
        Assert.That(late.Events, Is.Empty, "the late subscriber never sees an end whose start it missed");

        Ranges.StartEnd(mm, 0, 1);
        Assert.That(late.Kinds, Is.EqualTo(new[] { NotifierTraceKind.InvalidateRangeStart, NotifierTraceKind.InvalidateRangeEnd }));
    }

    [Test]
    public void StatsCountStartsAndEnds()
    {
        var mm = new TestMm();
        mm.Notifiers.Register(new NotifierEventRecorder());
        for (ulong i = 0; i < 5; i++)
        {
            Ranges.StartEnd(mm, i, 1);
        }

        var stats = mm.Notifiers.Stats;
        Assert.That(stats.Starts, Is.EqualTo(5));
        Assert.That(stats.Ends, Is.EqualTo(5));
        Assert.That(stats.Subscribers, Is.EqualTo(1));
    }

    private sealed class NamedNotifier(string name, List<string> order) : IMmuNotifier
    {
        public bool InvalidateRangeStart(in NotifierRange range)
        {
            order.Add("start " + name);
            return true;
        }

        public void InvalidateRangeEnd(in NotifierRange range) => order.Add("end " + name);
    }

    private sealed class RefuseEverything : IMmuNotifier
    {
        public bool InvalidateRangeStart(in NotifierRange range) => false;
    }
}
