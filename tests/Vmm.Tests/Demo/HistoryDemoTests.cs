using Hypervisor.GuestMmu.Addresses;
using Hypervisor.Notifier;
using Hypervisor.Notifier.Tracing;
using Hypervisor.Vmm.Demo.History;

namespace Hypervisor.Vmm.Tests.Demo;

/// <summary>
/// <see cref="HistoryDemo"/>: each historical race leaves a stale secondary mapping that the MMU auditor catches under
/// its era, and the same interleaving under today's contract leaves none. Asserted on the auditor's findings and the
/// recorded events, not on printed text.
/// </summary>
public sealed class HistoryDemoTests
{
    private static readonly Dictionary<(HistoricalRace, NotifierEra), HistoryRunResult> s_runs = [];

    private static HistoryRunResult Run(HistoricalRace race, NotifierEra era)
    {
        lock (s_runs)
        {
            if (!s_runs.TryGetValue((race, era), out var run))
            {
                run = HistoryDemo.Replay(race, era);
                s_runs[(race, era)] = run;
            }

            return run;
        }
    }

    private static HistoryRunResult Historical(HistoricalRace race) => Run(race, HistoricalRaceInfo.Of(race).Era);

    private static HistoryRunResult Today(HistoricalRace race) => Run(race, NotifierEra.Current);

    private static string RacedGfn => new Gfn(HistoryDemo.RacedPage).ToString();

    /// <summary>The events one actor recorded, in order.</summary>
    private static List<NotifierTraceEvent> By(HistoryRunResult run, string actor)
    {
        var id = run.Threads.Single(pair => pair.Value == actor).Key;
        return [.. run.Timeline.Where(e => e.ThreadId == id)];
    }

    private static int IndexOf(HistoryRunResult run, Func<NotifierTraceEvent, bool> match) =>
        run.Timeline.ToList().FindIndex(e => match(e));

    [TestCase("release-unlink")]
    [TestCase("unregister-release")]
    [TestCase("no-range-start")]
    public void EachRaceLeavesAStaleSpteToAFreedFrameInItsEra(string name)
    {
        var run = Historical(HistoricalRaceInfo.Find(name)!.Race);

        Assert.Multiple(() =>
        {
            Assert.That(run.Era, Is.Not.EqualTo(NotifierEra.Current));
            Assert.That(run.StaleMappingCaught, Is.True);
            Assert.That(run.CheckpointViolations, Has.Some.EndsWith("which is free"), "an spte maps a frame the host freed");
            Assert.That(run.FinalViolations, Is.Empty, "the late release or invalidate zaps it in the end: the damage is the window");
        });
    }

    [TestCase("release-unlink")]
    [TestCase("unregister-release")]
    [TestCase("no-range-start")]
    public void TheSameInterleavingIsCleanToday(string name)
    {
        var run = Today(HistoricalRaceInfo.Find(name)!.Race);

        Assert.Multiple(() =>
        {
            Assert.That(run.Era, Is.EqualTo(NotifierEra.Current));
            Assert.That(run.CheckpointViolations, Is.Empty);
            Assert.That(run.FinalViolations, Is.Empty);
            Assert.That(run.IsClean, Is.True);
        });
    }

    [Test]
    public void In2012TheMigrationsStartMissedTheUnlinkedMmuAndItsOldFrameStayedMapped()
    {
        var historical = Historical(HistoricalRace.ReleaseUnlink);
        var today = Today(HistoricalRace.ReleaseUnlink);

        Assert.Multiple(() =>
        {
            Assert.That(historical.CheckpointViolations, Has.All.StartsWith(RacedGfn + " "), "only the migrated page is stale");
            Assert.That(historical.CheckpointViolations, Has.Some.Contains("but the host maps"), "the host maps the new frame");
            Assert.That(By(historical, "migration").Count(e => e.Kind == NotifierTraceKind.InvalidateRangeStart), Is.Zero);
            Assert.That(By(today, "migration").Count(e => e.Kind == NotifierTraceKind.InvalidateRangeStart), Is.EqualTo(1));
            Assert.That(
                IndexOf(today, e => e.Kind == NotifierTraceKind.InvalidateRangeStart),
                Is.LessThan(IndexOf(today, e => e.Kind == NotifierTraceKind.FrameFree)),
                "today the start reaches the MMU before the old frame is freed");
            Assert.That(historical.Releases, Is.EqualTo(1));
            Assert.That(today.Releases, Is.EqualTo(1));
        });
    }

    [Test]
    public void In2013ExitFreedEveryPageBeforeUnregistersReleaseZappedTodayAfterIt()
    {
        var historical = Historical(HistoricalRace.UnregisterRelease);
        var today = Today(HistoricalRace.UnregisterRelease);
        bool IsReleaseZap(NotifierTraceEvent e) => e.Kind == NotifierTraceKind.Mark && e.Label?.StartsWith("MMU released", StringComparison.Ordinal) == true;
        bool IsFree(NotifierTraceEvent e) => e.Kind == NotifierTraceKind.FrameFree;

        Assert.Multiple(() =>
        {
            var gfns = historical.CheckpointViolations.Select(v => v.Split(' ')[0]).Distinct();
            Assert.That(gfns, Is.EquivalentTo(Enumerable.Range(0, HistoryWorld.GuestPages).Select(p => new Gfn((ulong)p).ToString())), "every page is stale");
            Assert.That(IndexOf(historical, IsFree), Is.LessThan(IndexOf(historical, IsReleaseZap)));
            Assert.That(IndexOf(today, IsFree), Is.GreaterThan(IndexOf(today, IsReleaseZap)));
            Assert.That(historical.Releases, Is.EqualTo(1), "the unlink claimed it: never twice");
            Assert.That(today.Releases, Is.EqualTo(1));
        });
    }

    [Test]
    public void In2008TheFaultInstalledTheOldFrameWithoutARetryTodayItWaitedAndRetried()
    {
        var historical = Historical(HistoricalRace.NoRangeStartEnd);
        var today = Today(HistoricalRace.NoRangeStartEnd);

        Assert.Multiple(() =>
        {
            Assert.That(historical.CheckpointViolations, Has.All.StartsWith(RacedGfn + " "));
            Assert.That(historical.CheckpointViolations, Has.Some.Contains("but the host PTE is"), "the host had cleared its PTE");
            Assert.That(historical.MmuStats.Retries, Is.Zero);
            Assert.That(historical.MmuStats.InvalidationWaits, Is.Zero);
            Assert.That(today.MmuStats.Retries, Is.GreaterThanOrEqualTo(1));
            Assert.That(today.MmuStats.InvalidationWaits, Is.EqualTo(1));
            Assert.That(
                IndexOf(historical, e => e.Kind == NotifierTraceKind.InvalidateRangeStart),
                Is.GreaterThan(IndexOf(historical, e => e.Kind == NotifierTraceKind.FrameFree)),
                "the 2008 host announced the change after the free");
        });
    }

    [TestCase("release-unlink", NotifierEra.ReleaseAfterUnlink)]
    [TestCase("no-range-start", NotifierEra.Current)]
    public void EveryReplayRecordsTheSameTimeline(string name, NotifierEra era)
    {
        var race = HistoricalRaceInfo.Find(name)!.Race;
        static List<string> Rows(HistoryRunResult run) =>
            [.. run.Timeline.Select(e => $"{e.Kind} {e.MmId} {e.Start} {e.End} {e.Pfn} {e.Pte} {e.Label} {run.Threads.GetValueOrDefault(e.ThreadId, "script")}")];

        var first = HistoryDemo.Replay(race, era);
        var second = HistoryDemo.Replay(race, era);

        Assert.That(Rows(second), Is.EqualTo(Rows(first)));
        Assert.That(second.CheckpointViolations, Is.EqualTo(first.CheckpointViolations));
    }

    [Test]
    public void RunReplaysEveryRaceInOrderWhenNoneIsNamedAndSucceeds()
    {
        var result = HistoryDemo.Run([]);

        Assert.That(result.Races.Select(r => r.Info.Race), Is.EqualTo(new[] { HistoricalRace.ReleaseUnlink, HistoricalRace.UnregisterRelease, HistoricalRace.NoRangeStartEnd }));
        Assert.That(result.Races.Select(r => r.Succeeded), Has.All.True);
        Assert.That(result.Succeeded, Is.True);
    }

    [Test]
    public void ARaceCaughtTodayOrMissedInItsEraIsAFailure()
    {
        var caught = Historical(HistoricalRace.NoRangeStartEnd);
        var clean = Today(HistoricalRace.NoRangeStartEnd);
        var info = HistoricalRaceInfo.Of(HistoricalRace.NoRangeStartEnd);

        Assert.That(new HistoryRaceResult(info, caught, clean).Succeeded, Is.True);
        Assert.That(new HistoryRaceResult(info, clean, clean).Succeeded, Is.False, "not caught in its era");
        Assert.That(new HistoryRaceResult(info, caught, caught).Succeeded, Is.False, "not clean today");
        Assert.That(new HistoryDemoResult([]).Succeeded, Is.False);
    }
}
