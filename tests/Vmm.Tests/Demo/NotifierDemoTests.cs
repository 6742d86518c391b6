using Hypervisor.Notifier;
using Hypervisor.Notifier.Tracing;
using Hypervisor.Notifier.UserEvents;
using Hypervisor.Vmm.Demo;
using Microsoft.Extensions.Logging.Abstractions;

namespace Hypervisor.Vmm.Tests.Demo;

/// <summary>The demo's script checked against the ordering rules of reference/mmu-notifier.md §3.</summary>
public sealed class NotifierDemoTests
{
    private static NotifierDemoResult Run(int seed = 1, int ranges = 3) => NotifierDemo.Run(seed, ranges, NullLoggerFactory.Instance);

    private static bool Covers(NotifierTraceEvent e, Hva start, Hva end) => e.Start <= start && end <= e.End;

    [TestCase(1)]
    [TestCase(2)]
    [TestCase(42)]
    public void NoFrameIsFreedBeforeAStartCoveringItOrWhileItsRangeIsOpen(int seed)
    {
        var open = new List<NotifierTraceEvent>();
        var announced = new List<NotifierTraceEvent>();
        var frees = 0;
        foreach (var e in Run(seed, ranges: 16).Timeline)
        {
            switch (e.Kind)
            {
                case NotifierTraceKind.InvalidateRangeStart:
                    open.Add(e);
                    announced.Add(e);
                    break;
                case NotifierTraceKind.InvalidateRangeEnd:
                    Assert.That(open.RemoveAll(s => s.Start == e.Start && s.End == e.End && s.Event == e.Event), Is.EqualTo(1), $"end without start: {e}");
                    break;
                case NotifierTraceKind.IntervalInvalidate:
                    announced.Add(e);
                    break;
                case NotifierTraceKind.FrameFree:
                    frees++;
                    Assert.That(announced.Any(s => s.Blockable && Covers(s, e.Start, e.End)), Is.True, $"freed without a start first: {e}");
                    Assert.That(open.Any(s => s.Start < e.End && e.Start < s.End), Is.False, $"freed inside start..end: {e}");
                    break;
            }
        }

        Assert.Multiple(() =>
        {
            Assert.That(open, Is.Empty, "every start ended");
            Assert.That(frees, Is.GreaterThan(0));
        });
    }

    [Test]
    public void HostPteChangesOfInvalidationsHappenBetweenStartAndEnd()
    {
        var timeline = Run().Timeline;
        var exitRelease = timeline.ToList().FindIndex(e => e.Kind == NotifierTraceKind.Release);
        var open = 0;
        var aging = false;
        foreach (var e in timeline.Take(exitRelease))
        {
            open += e.Kind switch
            {
                NotifierTraceKind.InvalidateRangeStart => 1,
                NotifierTraceKind.InvalidateRangeEnd => -1,
                _ => 0,
            };
            aging = e.Kind == NotifierTraceKind.Mark ? e.Label!.StartsWith("aging", StringComparison.Ordinal) : aging;
            if (e.Kind == NotifierTraceKind.HostPteChange && !aging)
            {
                Assert.That(open, Is.EqualTo(1), $"PTE changed outside start..end: {e}");
            }
        }
    }

    [Test]
    public void RefusedNonBlockableStartGetsNoEndFromTheHostButAcceptersAreEnded()
    {
        var result = Run();
        var nonblock = result.Timeline.Where(e => e.Event is not null && !e.Blockable).Select(e => e.Kind).ToList();

        Assert.Multiple(() =>
        {
            Assert.That(nonblock, Is.EqualTo(new[] { NotifierTraceKind.InvalidateRangeStart, NotifierTraceKind.InvalidateRangeEnd }));
            Assert.That(result.ChainStats.FailedStarts, Is.EqualTo(1));
            Assert.That(result.ChainStats.Starts, Is.EqualTo(result.ChainStats.Ends + 1));
        });
    }

    [Test]
    public void ExitReleasesEverySubscriberOnceThenOnlyIntervalsSeeTheFinalUnmap()
    {
        var result = Run();
        var timeline = result.Timeline.ToList();
        var release = timeline.FindIndex(e => e.Kind == NotifierTraceKind.Release);
        var afterRelease = timeline.Skip(release + 1).ToList();

        Assert.Multiple(() =>
        {
            Assert.That(timeline.Count(e => e.Kind == NotifierTraceKind.Release), Is.EqualTo(1));
            Assert.That(timeline[release - 1].Event, Is.EqualTo(NotifierEvent.Release), "interval release invalidation comes first");
            Assert.That(afterRelease.Select(e => e.Kind), Has.None.EqualTo(NotifierTraceKind.InvalidateRangeStart));
            Assert.That(
                afterRelease.Where(e => e.Kind == NotifierTraceKind.IntervalInvalidate).Select(e => (e.Event, e.Start, e.End)),
                Is.EqualTo(new[] { ((NotifierEvent?)NotifierEvent.Unmap, Hva.Zero, Hva.AddressSpaceEnd) }));
            Assert.That(result.ChainStats.Subscribers, Is.Zero);
            Assert.That(result.ChainStats.Exiting, Is.True);
        });
    }

    [Test]
    public void IntervalSubscriberSeesOnlyOverlappingRanges()
    {
        var intervals = Run(ranges: 16).Timeline.Where(e => e.Kind == NotifierTraceKind.IntervalInvalidate);

        Assert.That(intervals.All(e => e.Start < NotifierDemo.IntervalEnd && NotifierDemo.IntervalStart < e.End), Is.True);
    }

    [Test]
    public void FirstChannelReadCarriesTheHintsOfTheScriptedOperations()
    {
        var first = Run().UserEventReads[0];

        Assert.That(
            first.Events,
            Is.EqualTo(new[]
            {
                new UserEvent(UserEventType.Invalidate, UserEventFlags.Hint, NotifierDemo.MappingStart + 0xe000, NotifierDemo.MappingStart + 0x10000, 1),
                new UserEvent(UserEventType.Invalidate, UserEventFlags.Hint, NotifierDemo.MappingStart + 0x20000, NotifierDemo.MappingStart + 0x22000, 2),
                new UserEvent(UserEventType.Last, UserEventFlags.None, Hva.Zero, Hva.Zero, 2),
            }));
    }

    [TestCase(1)]
    [TestCase(7)]
    public void LastEventOfTheFinalReadCarriesTheChannelsGeneration(int seed)
    {
        var result = Run(seed);
        var last = result.UserEventReads[^1].Events[^1];

        Assert.Multiple(() =>
        {
            Assert.That(last.Type, Is.EqualTo(UserEventType.Last));
            Assert.That(last.CookieOrCounter, Is.EqualTo(result.ChannelStats.Generation));
            Assert.That(result.ChannelStats.PendingEvents, Is.Zero);
        });
    }

    [Test]
    public void SameSeedGivesTheSameTimelineApartFromGlobalSequenceNumbers()
    {
        static IEnumerable<NotifierTraceEvent> Normalised(NotifierDemoResult r) => r.Timeline.Select(e => e with { Sequence = 0, ThreadId = 0 });

        var first = Normalised(Run(seed: 5)).ToList();
        var second = Normalised(Run(seed: 5)).ToList();

        Assert.That(second, Is.EqualTo(first));
    }

    [Test]
    public void NegativeRangeCountIsRejected()
    {
        Assert.That(() => NotifierDemo.Run(1, -1, NullLoggerFactory.Instance), Throws.InstanceOf<ArgumentOutOfRangeException>());
    }
}
