using System.Globalization;
using Hypervisor.Notifier.Tracing;
using Hypervisor.Vmm.Cli.Output;

namespace Hypervisor.Vmm.Demo.History;

/// <summary>
/// Writes a <see cref="HistoryDemoResult"/>: per race, its story, the era's timeline and the auditor's findings, today's
/// timeline and verdict; then one summary table.
/// </summary>
internal static class HistoryDemoReport
{
    /// <summary>Label of the scheduler's own thread in the thread column.</summary>
    public const string ScriptThread = "script";

    /// <summary>Heading of the summary section.</summary>
    public const string SummarySection = "Summary";

    /// <summary>Most auditor lines shown per run; the rest are counted.</summary>
    public const int ShownViolations = 6;

    /// <summary>Writes the whole report.</summary>
    public static void Write(HistoryDemoResult result, ReportWriter writer)
    {
        ArgumentNullException.ThrowIfNull(result);
        ArgumentNullException.ThrowIfNull(writer);
        writer.Title("hv demo history: the notifier races behind the 2008-2013 fixes, replayed");
        writer.Paragraph(
            "Each race runs twice with the same interleaving: first with the notifier chain",
            "and the host in that era's mode, then with today's. The threads (a vCPU, the",
            "exiting process, a migration, the VMM) take their steps one at a time from a",
            "scheduler that holds each at named points, so every run prints the same",
            "timeline. The secondary MMU is the real EPT MMU (src/GuestMmu) on the",
            "process's chain; MmuAuditor.Check looks for a secondary mapping that is stale:",
            "an spte to a frame the host no longer maps there, or to a freed frame.",
            Invariant($"Ranges are pages of the guest's {HistoryWorld.GuestPages}-page RAM; race page: {HistoryDemo.RacedPage}."));
        foreach (var race in result.Races)
        {
            WriteRace(race, writer);
        }

        WriteSummary(result, writer);
    }

    /// <summary>One line: what the race's two runs showed.</summary>
    public static string Verdict(HistoryRaceResult race)
    {
        ArgumentNullException.ThrowIfNull(race);
        var historical = race.Historical.StaleMappingCaught
            ? Invariant($"caught in {race.Info.Era} ({race.Historical.CheckpointViolations.Count} violations)")
            : $"NOT caught in {race.Info.Era}";
        var today = race.Today.IsClean ? "clean today" : Invariant($"NOT clean today ({Findings(race.Today)})");
        return $"{historical}; {today}";
    }

    private static void WriteRace(HistoryRaceResult race, ReportWriter writer)
    {
        writer.Section($"{race.Info.Name}: {race.Info.Title}");
        writer.Paragraph(Wrap(race.Info.Fix));
        WriteRun(race.Historical, $"In the {race.Info.Era} era", writer);
        WriteRun(race.Today, "Today (Current)", writer);
        writer.Paragraph(Verdict(race));
    }

    private static void WriteRun(HistoryRunResult run, string heading, ReportWriter writer)
    {
        writer.Section($"{heading}: timeline");
        var table = new ReportTable(
            new ReportColumn("#", AlignRight: true),
            new ReportColumn("kind"),
            new ReportColumn("range", Wrap: true),
            new ReportColumn("event"),
            new ReportColumn("detail", Wrap: true),
            new ReportColumn("thread"));
        var number = 0;
        foreach (var row in TimelineFolder.Fold(run.Timeline, run.ZeroPfn, run.DescribeRange))
        {
            string[] cells =
            [
                (++number).ToString(CultureInfo.InvariantCulture),
                row.Kind.ToString(),
                row.Range,
                row.Event,
                row.Detail,
                run.Threads.TryGetValue(row.ThreadId, out var name) ? name : ScriptThread,
            ];
            if (row.Kind == NotifierTraceKind.Mark && !run.Threads.ContainsKey(row.ThreadId))
            {
                table.AddEmphasisedRow(cells);
            }
            else
            {
                table.AddRow(cells);
            }
        }

        writer.Table(table);
        writer.Section($"{heading}: MmuAuditor.Check {run.Checkpoint}");
        if (run.CheckpointViolations.Count == 0)
        {
            writer.Paragraph("no violation: nothing stale");
        }
        else
        {
            var violations = new ReportTable(new ReportColumn("violation", Wrap: true));
            foreach (var line in run.CheckpointViolations.Take(ShownViolations))
            {
                violations.AddRow(line);
            }

            if (run.CheckpointViolations.Count > ShownViolations)
            {
                violations.AddRow(Invariant($"... and {run.CheckpointViolations.Count - ShownViolations} more"));
            }

            writer.Table(violations);
        }

        writer.Paragraph(Invariant(
            $"At the end: {(run.FinalViolations.Count == 0 ? "nothing stale" : $"{run.FinalViolations.Count} violations")}; release called {run.Releases} time{(run.Releases == 1 ? string.Empty : "s")}; the MMU retried {run.MmuStats.Retries} fault{(run.MmuStats.Retries == 1 ? string.Empty : "s")} and zapped {run.MmuStats.Zapped} spte{(run.MmuStats.Zapped == 1 ? string.Empty : "s")}."));
    }

    private static void WriteSummary(HistoryDemoResult result, ReportWriter writer)
    {
        writer.Section(SummarySection);
        var table = new ReportTable(
            new ReportColumn("race"),
            new ReportColumn("era"),
            new ReportColumn("era run", Wrap: true),
            new ReportColumn("today", Wrap: true));
        foreach (var race in result.Races)
        {
            table.AddRow(
                race.Info.Name,
                race.Info.Era.ToString(),
                race.Historical.StaleMappingCaught ? Invariant($"caught: {race.Historical.CheckpointViolations.Count} violations") : "NOT caught",
                race.Today.IsClean ? "clean" : $"NOT clean: {Findings(race.Today)}");
        }

        writer.Table(table);
        var caught = result.Races.Count(race => race.Succeeded);
        writer.Paragraph(Invariant($"{caught} of {result.Races.Count} race{(result.Races.Count == 1 ? string.Empty : "s")} caught in their era and clean today."));
    }

    private static string Findings(HistoryRunResult run) =>
        Invariant($"{run.CheckpointViolations.Count} at the checkpoint, {run.FinalViolations.Count} at the end, {run.Releases} releases");

    /// <summary>Breaks a long sentence into lines of at most 78 characters, at spaces, as the other paragraphs are written.</summary>
    private static string[] Wrap(string text)
    {
        var lines = new List<string>();
        var line = string.Empty;
        foreach (var word in text.Split(' '))
        {
            if (line.Length > 0 && line.Length + 1 + word.Length > 78)
            {
                lines.Add(line);
                line = word;
            }
            else
            {
                line = line.Length == 0 ? word : $"{line} {word}";
            }
        }

        lines.Add(line);
        return [.. lines];
    }

    private static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);
}
