using Hypervisor.HostMm;
using Hypervisor.Notifier;
using Hypervisor.Notifier.Tracing;
using Hypervisor.Notifier.UserEvents;
using Hypervisor.Vmm.Cli;
using Hypervisor.Vmm.Demo;
using Microsoft.Extensions.Logging.Abstractions;

namespace Hypervisor.Vmm.Tests.Demo;

/// <summary>The demo's recorded timeline (unfolded) checked against the ordering rules of reference/mmu-notifier.md §3.</summary>
public sealed class HostDemoTests
{
    /// <summary>Steps the script always runs besides the random ones: mmap … exit.</summary>
    private const int ScriptedSteps = 14;

    private static HostDemoResult Run(int seed = 1, int ranges = 3) => HostDemo.Run(seed, ranges, NullLoggerFactory.Instance);

    private static bool Covers(NotifierTraceEvent e, Hva start, Hva end) => e.Start <= start && end <= e.End;

    [TestCase(1)]
    [TestCase(2)]
    [TestCase(42)]
    public void NoFrameIsFreedWhileAPteStillMapsItOrWhileAStartIsOpen(int seed)
    {
        var mapped = new Dictionary<(int Mm, Hva Address), Pfn>();
        var open = new List<NotifierTraceEvent>();
        var frees = 0;
        foreach (var e in Run(seed, ranges: 16).Timeline)
        {
            switch (e.Kind)
            {
                case NotifierTraceKind.InvalidateRangeStart:
                    open.Add(e);
                    break;
                case NotifierTraceKind.InvalidateRangeEnd:
                    Assert.That(open.RemoveAll(s => s.Start == e.Start && s.End == e.End && s.Event == e.Event), Is.EqualTo(1), $"end without start: {e}");
                    break;
                case NotifierTraceKind.HostPteChange when e.Pte.IsPresent:
                    mapped[(e.MmId, e.Start)] = e.Pte.Pfn;
                    break;
                case NotifierTraceKind.HostPteChange:
                    mapped.Remove((e.MmId, e.Start));
                    break;
                case NotifierTraceKind.FrameFree:
                    frees++;
                    Assert.That(mapped.Where(m => m.Value == e.Pfn).Select(m => m.Key), Is.Empty, $"{e.Pfn} freed while a PTE still maps it");
                    Assert.That(open, Is.Empty, $"{e.Pfn} freed inside start..end (§3: frees come after end)");
                    break;
            }
        }

        Assert.Multiple(() =>
        {
            Assert.That(open, Is.Empty, "every start ended");
            Assert.That(frees, Is.GreaterThan(0));
        });
    }

    [TestCase(1)]
    [TestCase(7)]
    [TestCase(42)]
    public void EveryPteChangeOfTheWatchedMmThatTakesSomethingAwayIsInsideAnInvalidationCoveringIt(int seed)
    {
        // Rule 1 of §3: only additions (a fault filling an empty PTE, a write fault adding write to the same
        // frame) may change a secondary-visible PTE outside start..end. The child mm has no subscribers.
        var result = Run(seed, ranges: 16);
        var current = new Dictionary<Hva, HostPte>();
        var open = new List<NotifierTraceEvent>();
        var released = false;
        var checkedChanges = 0;
        foreach (var e in result.Timeline)
        {
            switch (e.Kind)
            {
                case NotifierTraceKind.Release:
                    released = true;
                    break;
                case NotifierTraceKind.InvalidateRangeStart:
                    open.Add(e);
                    break;
                case NotifierTraceKind.InvalidateRangeEnd:
                    open.RemoveAll(s => s.Start == e.Start && s.End == e.End && s.Event == e.Event);
                    break;
                case NotifierTraceKind.IntervalInvalidate when released && e.Event == NotifierEvent.Unmap:
                    open.Add(e); // exit's final unmap: after release only interval subscribers hear it, and they get no end
                    break;
                case NotifierTraceKind.HostPteChange when e.MmId == result.MmId:
                    var before = current.GetValueOrDefault(e.Start);
                    var after = e.Pte;
                    var addition = before.IsNone
                        || (after.IsPresent && before.IsPresent && after.Pfn == before.Pfn && (after.IsWritable || !before.IsWritable));
                    if (!addition)
                    {
                        checkedChanges++;
                        Assert.That(open.Any(s => Covers(s, e.Start, e.End)), Is.True, $"{before} → {after} at {e.Start} outside every start..end");
                    }

                    current[e.Start] = after;
                    break;
            }
        }

        Assert.That(checkedChanges, Is.GreaterThan(100), "clears, write-protects and moves were all checked");
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
                Is.EqualTo(new[] { ((NotifierEvent?)NotifierEvent.Unmap, Hva.Zero, Mm.UserSpaceEnd) }));
            Assert.That(afterRelease.Where(e => e.Kind == NotifierTraceKind.HostPteChange).Select(e => e.MmId), Is.Not.Empty.And.All.EqualTo(result.MmId));
            Assert.That(afterRelease.Select(e => e.Kind), Has.Some.EqualTo(NotifierTraceKind.FrameFree));
            Assert.That(result.ChainStats.Subscribers, Is.Zero);
            Assert.That(result.ChainStats.Exiting, Is.True);
        });
    }

    [Test]
    public void ReleaseComesBeforeAnyPteOfTheExitingMmIsCleared()
    {
        var timeline = Run().Timeline.ToList();
        var exitMark = timeline.FindLastIndex(e => e.Kind == NotifierTraceKind.Mark && e.Label!.StartsWith("exit(): ", StringComparison.Ordinal));
        var release = timeline.FindIndex(e => e.Kind == NotifierTraceKind.Release);
        var firstClear = timeline.FindIndex(exitMark, e => e.Kind == NotifierTraceKind.HostPteChange);

        Assert.That(exitMark, Is.LessThan(release).And.LessThan(firstClear));
        Assert.That(release, Is.LessThan(firstClear));
    }

    [Test]
    public void TheChildsExitIssuesNoNotifierCallsButFreesTheFramesOnlyItStillMapped()
    {
        var result = Run();
        var timeline = result.Timeline.ToList();
        var childExit = timeline.FindIndex(e => e.Kind == NotifierTraceKind.Mark && e.Label == $"exit() of child mm {result.ChildMmId}");
        var next = timeline.FindIndex(childExit + 1, e => e.Kind == NotifierTraceKind.Mark);
        var kinds = timeline.Skip(childExit + 1).Take(next - childExit - 1).Select(e => e.Kind).Distinct();

        Assert.That(kinds, Is.EqualTo(new[] { NotifierTraceKind.HostPteChange, NotifierTraceKind.HostTlbFlush, NotifierTraceKind.FrameFree }));
    }

    [Test]
    public void TheChildStillSeesTheOldDataAfterTheParentsCopyOnWriteBreak()
    {
        var result = Run();
        var marks = result.Timeline.Where(e => e.Kind == NotifierTraceKind.Mark).Select(e => e.Label);

        Assert.Multiple(() =>
        {
            Assert.That(marks, Has.Some.EqualTo($"child mm {result.ChildMmId} still reads \"page 30 gen 1\"; mm {result.MmId} reads \"page 30 gen 2\""));
            Assert.That(result.MmStatsBeforeExit.CopyOnWriteFaults, Is.GreaterThanOrEqualTo(1));
        });
    }

    [Test]
    public void IntervalSubscriberSeesOnlyOverlappingRanges()
    {
        var result = Run(ranges: 16);
        var intervals = result.Timeline.Where(e => e.Kind == NotifierTraceKind.IntervalInvalidate).ToList();

        Assert.Multiple(() =>
        {
            Assert.That(intervals, Is.Not.Empty);
            Assert.That(intervals.All(e => e.Start < result.Layout.IntervalEnd && result.Layout.IntervalStart < e.End), Is.True);
        });
    }

    [Test]
    public void FirstChannelReadCarriesTheHintsOfTheScriptedOperations()
    {
        var result = Run();
        var layout = result.Layout;

        // mprotect hit region 1 once (hint); MADV_DONTNEED and MADV_FREE both hit region 2 (coalesced: the
        // whole region, no hint); mremap's move hit region 3 once (hint); four starts hit a region.
        Assert.That(
            result.UserEventReads[0].Events,
            Is.EqualTo(new[]
            {
                new UserEvent(UserEventType.Invalidate, UserEventFlags.Hint, layout.Page(8), layout.Page(16), 1),
                new UserEvent(UserEventType.Invalidate, UserEventFlags.None, layout.Page(32), layout.Page(48), 2),
                new UserEvent(UserEventType.Invalidate, UserEventFlags.Hint, layout.Page(48), layout.Page(56), 3),
                new UserEvent(UserEventType.Last, UserEventFlags.None, Hva.Zero, Hva.Zero, 4),
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

    [TestCase(1)]
    [TestCase(3)]
    [TestCase(99)]
    public void TheAuditorFindsTheHostConsistentAfterEveryStep(int seed)
    {
        var result = Run(seed, ranges: HostDemoCommand.MaxRanges);

        Assert.Multiple(() =>
        {
            Assert.That(result.AuditFindings, Is.Empty, () => string.Join(Environment.NewLine, result.AuditFindings.SelectMany(f => f.Violations.Select(v => $"{f.Step}: {v}"))));
            Assert.That(result.AuditedSteps, Is.EqualTo(ScriptedSteps + HostDemoCommand.MaxRanges));
        });
    }

    [Test]
    public void EveryFrameIsBackOnTheFreeListAfterExitExceptTheZeroPage()
    {
        var result = Run(ranges: 16);
        var after = result.HostStatsAfterExit;

        Assert.Multiple(() =>
        {
            Assert.That(after.Processes, Is.Zero);
            Assert.That(after.RssPages, Is.Zero);
            Assert.That(after.Memory.AllocatedFrames, Is.EqualTo(1));
            Assert.That(after.Memory.Frees, Is.EqualTo(after.Memory.Allocations - 1));
            Assert.That(result.HostStatsBeforeExit.Processes, Is.EqualTo(1), "the child exited first");
            Assert.That(result.HostStatsBeforeExit.RssPages, Is.EqualTo(result.MmStatsBeforeExit.RssPages));
        });
    }

    [Test]
    public void TheProcessCountersShowTheScriptedFaultsAndOperations()
    {
        var stats = Run(ranges: 0).MmStatsBeforeExit;

        Assert.Multiple(() =>
        {
            Assert.That(stats.DemandZeroFaults, Is.EqualTo(HostDemo.WrittenPages));
            Assert.That(stats.ZeroPageFaults, Is.EqualTo(1));
            Assert.That(stats.CopyOnWriteFaults, Is.EqualTo(1));
            Assert.That(stats.PagesMoved, Is.EqualTo(8));
            Assert.That(stats.PagesProtected, Is.EqualTo(8));
            Assert.That(stats.PagesZapped, Is.EqualTo(8), "munmap and MADV_DONTNEED, 4 pages each");
            Assert.That(stats.Calls, Is.EqualTo((1L, 1L, 1L, 1L, 2L, 1L)));
        });
    }

    [Test]
    public void SameSeedGivesTheSameTimelineApartFromGlobalSequenceNumbers()
    {
        static IEnumerable<NotifierTraceEvent> Normalised(HostDemoResult r) => r.Timeline.Select(e => e with { Sequence = 0, ThreadId = 0 });

        var first = Normalised(Run(seed: 5)).ToList();
        var second = Normalised(Run(seed: 5)).ToList();

        Assert.That(second, Is.EqualTo(first));
    }

    [Test]
    public void NegativeRangeCountIsRejected()
    {
        Assert.That(() => HostDemo.Run(1, -1, NullLoggerFactory.Instance), Throws.InstanceOf<ArgumentOutOfRangeException>());
    }
}
