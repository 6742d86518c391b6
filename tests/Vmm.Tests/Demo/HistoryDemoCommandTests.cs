using Hypervisor.Vmm.Cli;
using Hypervisor.Vmm.Demo.History;
using Hypervisor.Vmm.Tests.Support;

namespace Hypervisor.Vmm.Tests.Demo;

/// <summary><c>hv demo history</c>: exit codes, the choice of races, and the report's structure, read back as text.</summary>
public sealed class HistoryDemoCommandTests
{
    private static readonly Lazy<CliResult> s_all = new(() => Hv.Run("demo", "history", "--plain"));

    [Test]
    public void AllRacesCaughtInTheirErasAndCleanTodayExitZero()
    {
        var result = s_all.Value;
        var summary = PlainTable.After(result.StdoutLines, HistoryDemoReport.SummarySection);

        Assert.Multiple(() =>
        {
            Assert.That(result.ExitCode, Is.EqualTo(ExitCodes.Success));
            Assert.That(result.Stderr, Is.Empty);
            Assert.That(summary.Column("race"), Is.EqualTo(HistoricalRaceInfo.All.Select(info => info.Name)));
            Assert.That(summary.Column("era"), Is.EqualTo(HistoricalRaceInfo.All.Select(info => info.Era.ToString())));
            Assert.That(summary.Column("era run"), Has.All.StartWith("caught: "));
            Assert.That(summary.Column("today"), Has.All.EqualTo("clean"));
        });
    }

    [Test]
    public void EachRacePrintsBothTimelinesWithTheActorsNamedAndTheAuditorsFindings()
    {
        var lines = s_all.Value.StdoutLines;
        foreach (var info in HistoricalRaceInfo.All)
        {
            var historical = PlainTable.After(lines, $"In the {info.Era} era: timeline");
            var today = PlainTable.After(lines, "Today (Current): timeline");
            Assert.That(historical.Headers, Is.EqualTo(new[] { "#", "kind", "range", "event", "detail", "thread" }));
            Assert.That(historical.Column("thread"), Has.Some.Not.EqualTo(HistoryDemoReport.ScriptThread), "actors' rows are named");
            Assert.That(today.Rows, Is.Not.Empty);
            var findings = lines.ToList().FindIndex(l => l.StartsWith($"In the {info.Era} era: MmuAuditor.Check", StringComparison.Ordinal));
            Assert.That(findings, Is.GreaterThan(0), $"{info.Name}: no auditor section");
            var violations = PlainTable.After(lines, lines[findings]);
            Assert.That(violations.Headers, Is.EqualTo(new[] { "violation" }), $"{info.Name}: the era's findings table");
            Assert.That(violations.Rows, Is.Not.Empty);
        }
    }

    [Test]
    public void ANamedRaceRunsAlone()
    {
        var result = Hv.Run("demo", "history", "no-range-start", "--plain");
        var summary = PlainTable.After(result.StdoutLines, HistoryDemoReport.SummarySection);

        Assert.That(result.ExitCode, Is.EqualTo(ExitCodes.Success));
        Assert.That(summary.Column("race"), Is.EqualTo(new[] { "no-range-start" }));
        Assert.That(result.Stdout, Does.Not.Contain("release-unlink:"));
    }

    [Test]
    public void AnUnknownRaceIsOneLineAndAUsageError()
    {
        var result = Hv.Run("demo", "history", "2014-race", "--plain");

        Assert.Multiple(() =>
        {
            Assert.That(result.ExitCode, Is.EqualTo(ExitCodes.UsageError));
            Assert.That(result.StderrLines.Where(l => l.Length > 0).ToList(), Has.Count.EqualTo(1));
            Assert.That(result.Stderr, Does.Contain("2014-race").And.Contain("release-unlink").And.Not.Contain("   at "));
            Assert.That(result.Stdout, Is.Empty);
        });
    }

    [Test]
    public void ARaceNotCaughtInItsEraIsAnInternalError()
    {
        var clean = HistoryDemo.Replay(HistoricalRace.NoRangeStartEnd, Notifier.NotifierEra.Current);
        var notCaught = new HistoryDemoResult([new HistoryRaceResult(HistoricalRaceInfo.Of(HistoricalRace.NoRangeStartEnd), clean, clean)]);
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();

        var exitCode = HistoryDemoCommand.Report(notCaught, new CliContext(stdout, stderr, isTerminal: false), plain: true);

        Assert.That(exitCode, Is.EqualTo(ExitCodes.InternalError));
        Assert.That(stderr.ToString(), Does.Contain("no-range-start").And.Contain("NOT caught"));
        Assert.That(stdout.ToString(), Does.Contain(HistoryDemoReport.SummarySection));
    }
}
