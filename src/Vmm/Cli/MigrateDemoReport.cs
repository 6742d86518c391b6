using System.Globalization;
using Hypervisor.Vmm.Cli.Output;
using Hypervisor.Vmm.Demo.Migrate;

namespace Hypervisor.Vmm.Cli;

/// <summary>
/// The closing report of <c>hv demo migrate</c>: a row per trip (pages migrated, failures, retry passes, time,
/// migration-entry waits in EPT faults, zaps and refaults, pages per node after it), the totals under Linux's
/// <c>/proc/vmstat</c> names, the NUMA balancing phase (numa_* counters, pages per node before and after, the cost to the
/// guest), the guest's verdict, the host's read-back and the audits.
/// </summary>
internal static class MigrateDemoReport
{
    private static readonly CultureInfo C = CultureInfo.InvariantCulture;

    /// <summary>Writes the report of <c>hv demo migrate --guest linux</c>.</summary>
    public static void WriteLinux(LinuxMigrateResult result, ReportWriter writer)
    {
        var m = result.Migration;
        writer.Title($"hv demo migrate --guest linux: {(result.Succeeded ? $"{N(m.PgmigrateSuccess)} pages migrated under a running Linux, and Linux never noticed" : "FAILED: " + Failure(result))}");
        writer.Section(
            $"{result.Banner ?? "Linux (no banner)"}: {N(result.Trips.Count)} trips of all guest RAM ({result.GuestBytes >> 20} MiB) between node 0 and node 1 "
            + $"while Linux boots and memtest fills and checks {result.MemtestMib} MiB of a Linux process's memory");
        writer.Table(TripsTable(result.Trips, "memtest", "running", "done"));
        writer.Paragraph(
        [
            .. result.UserlandLines.Select(line => "guest: " + line),
            $"pgmigrate_success {N(m.PgmigrateSuccess)}, pgmigrate_fail {N(m.PgmigrateFail)}, {N(result.TripsWhileLinuxRan)} trips while Linux ran, "
                + $"{N(result.Audits)} audits by the host MM auditor and the MMU auditor: "
                + (result.AuditViolations.Count == 0 ? "all clean" : $"{result.AuditViolations.Count} violation(s), first: {result.AuditViolations[0]}")
                + $"; {result.Elapsed.TotalSeconds.ToString("0.0", C)} s in all",
        ]);
    }

    /// <summary>Why <c>hv demo migrate --guest linux</c> failed, in one line.</summary>
    public static string Failure(LinuxMigrateResult result) =>
        result.Stop != Machine.VmStopKind.GuestExit || result.GuestExitCode != 0 ? $"the guest did not pass ({result.GuestVerdict})"
        : result.AuditViolations.Count > 0 ? $"{result.AuditViolations.Count} audit violation(s), first: {result.AuditViolations[0]}"
        : result.TripsWhileLinuxRan < 2 ? $"only {result.TripsWhileLinuxRan} trip(s) ran while Linux ran: give the guest more memory (-m)"
        : result.Trips.Any(t => t.Summary.Migrated == 0) ? "a trip migrated no page"
        : $"memtest did not report OK ({result.GuestVerdict})";

    /// <summary>Writes the report of <paramref name="result"/>.</summary>
    public static void Write(MigrateDemoResult result, ReportWriter writer)
    {
        var o = result.Options;
        var m = result.Migration;
        writer.Title($"hv demo migrate: {(result.Succeeded ? $"{N(m.PgmigrateSuccess)} pages migrated under a running guest, every page intact" : "FAILED: " + Failure(result))}");
        writer.Section(
            $"Phase 1: {N(o.Trips)} trips of all guest RAM ({o.GuestBytes >> 20} MiB) between node 0 and node 1 while the ksm guest fills {N(o.Pages)} pages and checks them {N(o.Passes)} times");
        writer.Table(TripsTable(result.Trips, "guest", "running", "held"));
        var totals = new ReportTable(new ReportColumn("figure"), new ReportColumn("value", AlignRight: true), new ReportColumn("what it counts", Wrap: true));
        totals.AddEmphasisedRow("pgmigrate_success", N(m.PgmigrateSuccess), "pages migrated, both phases (trips, the bind's move, NUMA balancing)");
        totals.AddEmphasisedRow("pgmigrate_fail", N(m.PgmigrateFail), $"pages that stayed after every pass: {N(m.FailBusy)} busy, {N(m.FailReferenced)} referenced (a get-user-pages reference held it), {N(m.FailTargetNodeFull)} target node full");
        totals.AddRow("retries", N(m.Retries), "attempts that ended -EAGAIN and went round again (up to 10 passes, as Linux)");
        totals.AddRow("migration entries", $"{N(m.EntriesInstalled)} / {N(m.EntriesRemoved)}", "installed by try_to_migrate_one / replaced by remove_migration_ptes (no notifier)");
        var waits = result.Trips.Sum(t => t.MigrationEntryWaits);
        var eptWaits = result.Trips.Sum(t => t.EptMigrationEntryWaits);
        totals.AddEmphasisedRow("migration-entry waits", $"{N(waits)} ({N(eptWaits)})", "phase 1's faults that met a migration entry and waited for the migration to end (in get-user-pages: EPT violations)");
        totals.AddRow("sptes zapped / EPT violations", $"{N(result.Trips.Sum(t => t.SptesZapped))} / {N(result.Trips.Sum(t => t.EptViolations))}", "phase 1: the migration's notifier zaps (start, Clear) and the guest's refaults to the new frames");
        var times = result.Trips.Select(t => t.Elapsed.TotalMilliseconds).ToList();
        if (times.Count > 0)
        {
            totals.AddRow("time per trip", $"{times.Average().ToString("N1", C)} ms", $"mean of {N(times.Count)}; min {times.Min().ToString("N1", C)} ms, max {times.Max().ToString("N1", C)} ms; {N(result.Trips.Count(t => t.GuestRunning))} trips began and ended with the guest running");
        }

        writer.Table(totals);
        if (result.Balancing is { } b)
        {
            writer.Section(
                $"Phase 2: guest RAM bound to node 0 and moved (mbind MPOL_BIND + MPOL_MF_MOVE: {N(b.BindMove.Migrated)} pages), the policy back to local, the vCPU's home node 1, NUMA balancing stepped ({(o.BalanceBudget > 0 ? N(o.BalanceBudget) + " pages" : "all guest RAM")} a step, the first as the guest is let go) while the guest checks its pages");
            var phase2 = new ReportTable(new ReportColumn("figure"), new ReportColumn("value", AlignRight: true), new ReportColumn("what it counts", Wrap: true));
            phase2.AddEmphasisedRow("pages per node before", RunReport.PerNode(b.DataPagesPerNodeBefore), $"the guest's own {N(result.GuestPages)} pages after the bind; all guest RAM {RunReport.PerNode(b.PagesPerNodeBefore)} (at the phase's start {RunReport.PerNode(b.PagesPerNodeAtStart)})");
            phase2.AddEmphasisedRow("pages per node after", RunReport.PerNode(b.DataPagesPerNodeAfter), $"when balancing stopped: {(b.ShareOnNode1 * 100).ToString("0.0", C)} % of the guest's pages on the vCPU's node (the goal: {(MigrateDemoOptions.BalancedShare * 100).ToString("0", C)} %); all guest RAM {RunReport.PerNode(b.PagesPerNodeAfter)} (image, stack and tables are touched too rarely to follow)");
            phase2.AddRow("numa_pte_updates", N(b.Stats.NumaPteUpdates), $"PTEs made PROT_NONE by {N(b.Steps)} balancing steps ({N(b.Stats.FullScans)} full scans)");
            phase2.AddRow("numa_hint_faults", N(b.Stats.NumaHintFaults), $"hinting faults, {N(b.Stats.NumaHintFaultsLocal)} local (numa_hint_faults_local: the page was already on the vCPU's node)");
            phase2.AddEmphasisedRow("numa_pages_migrated", N(b.Stats.NumaPagesMigrated), $"pages the hinting faults moved to the vCPU's node ({N(b.Stats.NumaMigrateFailed)} could not move)");
            phase2.AddEmphasisedRow("sptes zapped", N(b.SptesZapped), "the cost to the guest: every scan zaps the sptes it covers, whether the page then moves or not");
            phase2.AddEmphasisedRow("EPT violations", N(b.EptViolations), $"the guest's refaults after those zaps; {N(b.MigrationEntryWaits)} faults waited on a migration entry ({N(b.EptMigrationEntryWaits)} in get-user-pages)");
            phase2.AddRow("time", $"{b.Elapsed.TotalMilliseconds.ToString("N0", C)} ms", "from the first balancing step to the last");
            writer.Table(phase2);
        }

        writer.Paragraph(
            $"Guest: {result.Verdict} (exit code {(result.GuestExitCode is { } code ? code.ToString(C) : "none")}): it checked every page word by word after each phase.",
            $"Host read-back: {N(result.HostCheckedPages)} of the guest's {N(result.GuestPages)} pages read through the host after it exited, {N(result.HostCorruptedPages)} not holding the guest's last writes.",
            $"Audits: {N(result.Audits)} by the host MM auditor and the MMU auditor, after every trip and every balancing step, at a quiescent point (between two interpreter slices, or with the guest held at a console line): "
                + (result.AuditViolations.Count == 0 ? "all clean." : $"{result.AuditViolations.Count} violation(s), first: {result.AuditViolations[0]}"),
            $"Time: {result.Elapsed.TotalSeconds.ToString("0.0", C)} s.");
    }

    /// <summary>What went wrong, in one line (empty when the demo succeeded).</summary>
    public static string Failure(MigrateDemoResult result)
    {
        var reasons = new List<string>();
        if (result.Problem is { } problem)
        {
            reasons.Add(problem);
        }

        if (result.Trips.Count < result.Options.Trips)
        {
            reasons.Add($"{N(result.Trips.Count)} of {N(result.Options.Trips)} trips were made");
        }

        foreach (var trip in result.Trips.Where(t => t.Summary.Migrated == 0))
        {
            reasons.Add($"trip {N(trip.Number)} migrated nothing");
        }

        if (result.Balancing is { } b && !b.Balanced)
        {
            reasons.Add($"NUMA balancing left {(b.ShareOnNode1 * 100).ToString("0.0", C)} % of the pages on node 1");
        }
        else if (result.Balancing is { Stats.NumaPagesMigrated: 0 })
        {
            reasons.Add("NUMA balancing migrated nothing");
        }
        else if (result.Balancing is null)
        {
            reasons.Add("phase 2 (NUMA balancing) did not run");
        }

        if (!result.GuestPassed)
        {
            reasons.Add($"the guest did not pass ({result.Verdict})");
        }

        if (result.HostCorruptedPages > 0 || result.HostCheckedPages != result.GuestPages || result.GuestPages == 0)
        {
            reasons.Add($"the host's read-back found {N(result.HostCorruptedPages)} bad pages in {N(result.HostCheckedPages)} of {N(result.GuestPages)}");
        }

        if (result.AuditViolations.Count > 0)
        {
            reasons.Add($"the auditors found {result.AuditViolations.Count} violation(s): {result.AuditViolations[0]}");
        }

        if (!result.Options.AuditEveryStep)
        {
            reasons.Add("audits were off (--no-audit)");
        }
        else if (result.Audits == 0)
        {
            reasons.Add("no audit ran");
        }

        return string.Join("; ", reasons);
    }

    private static string N(long value) => value.ToString("N0", C);

    /// <summary>
    /// A row per trip: pages migrated, failures, retry passes, time, migration-entry waits (those in EPT faults), zaps,
    /// refaults, pages per node after it, and whether the guest ran through it (<paramref name="running"/>) or not.
    /// </summary>
    private static ReportTable TripsTable(IEnumerable<MigrateTrip> trips, string guestColumn, string running, string notRunning)
    {
        var table = new ReportTable(
            new ReportColumn("trip"),
            new ReportColumn("to node", AlignRight: true),
            new ReportColumn("migrated", AlignRight: true),
            new ReportColumn("failed", AlignRight: true),
            new ReportColumn("retry passes", AlignRight: true),
            new ReportColumn("time", AlignRight: true),
            new ReportColumn("entry waits (EPT)", AlignRight: true),
            new ReportColumn("sptes zapped", AlignRight: true),
            new ReportColumn("EPT violations", AlignRight: true),
            new ReportColumn("pages per node after"),
            new ReportColumn(guestColumn));
        foreach (var trip in trips)
        {
            var s = trip.Summary;
            table.AddRow(
                N(trip.Number),
                N(trip.TargetNode),
                N(s.Migrated),
                N(s.Failed),
                N(s.RetryPasses),
                $"{trip.Elapsed.TotalMilliseconds.ToString("N1", C)} ms",
                $"{N(trip.MigrationEntryWaits)} ({N(trip.EptMigrationEntryWaits)})",
                N(trip.SptesZapped),
                N(trip.EptViolations),
                RunReport.PerNode(trip.PagesPerNodeAfter),
                trip.GuestRunning ? running : notRunning);
        }

        return table;
    }
}
