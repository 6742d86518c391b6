using System.Globalization;
using Hypervisor.HostMm.Reclaim;
using Hypervisor.Vmm.Cli.Output;
using Hypervisor.Vmm.Demo.Swap;

namespace Hypervisor.Vmm.Cli;

/// <summary>The closing report of <c>hv demo swap</c>: phase 1's verdict and counters, phase 2's secondary-aging table.</summary>
internal static class SwapDemoReport
{
    private static readonly CultureInfo C = CultureInfo.InvariantCulture;

    /// <summary>Writes the report of <c>hv demo swap --guest linux</c>.</summary>
    public static void WriteLinux(LinuxSwapResult result, ReportWriter writer)
    {
        writer.Title($"hv demo swap --guest linux: {(result.Succeeded ? "Linux's memory swapped out and back, and Linux never noticed" : "FAILED: " + Failure(result))}");
        writer.Section(
            $"{result.Banner ?? "Linux (no banner)"}: {result.GuestBytes >> 20} MiB of guest RAM under a host limit of {result.HostLimitBytes >> 20} MiB "
            + $"({(double)result.GuestBytes / result.HostLimitBytes:0.#}x), swap on {result.SwapDevice}; memtest over {result.MemtestMib} MiB of a Linux process's anonymous memory");
        writer.Paragraph(
        [
            .. result.UserlandLines.Select(line => "guest: " + line),
            $"{result.Audits.ToString("N0", C)} audits by the host MM auditor and the MMU auditor after reclaim batches: "
                + (result.AuditViolations.Count == 0 ? "all clean" : $"{result.AuditViolations.Count} violation(s), first: {result.AuditViolations[0]}"),
        ]);
        var counters = new ReportTable(new ReportColumn("counter"), new ReportColumn("value", AlignRight: true), new ReportColumn("what it counts", Wrap: true));
        var r = result.Reclaim;
        counters.AddRow("pswpout", N(r.Pswpout), "guest pages written to swap under the running kernel");
        counters.AddRow("pswpin", N(r.Pswpin), "guest pages read back from swap on the guest's faults (EPT violation -> host fault -> swap-in)");
        counters.AddRow("pgscan", N(r.Pgscan), $"pages scanned by reclaim ({N(r.PgscanKswapd)} kswapd, {N(r.PgscanDirect)} direct)");
        counters.AddRow("pgsteal", N(r.Pgsteal), "pages reclaimed");
        counters.AddRow("workingset_refault_anon", N(r.WorkingsetRefaultAnon), "refaults of recently evicted pages");
        counters.AddRow("secondary-young answers", $"{N(r.SecondaryYoungHits)} / {N(r.SecondaryYoungQueries)}", "young / asked: the EPT accessed bits reaching the host's LRU");
        counters.AddRow("resident / swapped at exit", $"{N(result.ResidentAtExit)} / {N(result.SwappedAtExit)}", "guest pages when the guest exited");
        counters.AddRow("instructions", N(result.Instructions), "retired by the interpreter (boot, memtest, exit)");
        counters.AddRow("time", $"{result.Elapsed.TotalSeconds.ToString("0.0", C)} s", "the guest's run, audits included");
        writer.Table(counters);
    }

    /// <summary>Why <c>hv demo swap --guest linux</c> failed, in one line.</summary>
    public static string Failure(LinuxSwapResult result) =>
        result.Stop != Machine.VmStopKind.GuestExit || result.GuestExitCode != 0 ? $"the guest did not pass ({result.GuestVerdict})"
        : result.AuditViolations.Count > 0 ? $"{result.AuditViolations.Count} audit violation(s), first: {result.AuditViolations[0]}"
        : result.Reclaim.Pswpout == 0 ? "no guest page went to swap: the host limit was never reached"
        : $"memtest did not report OK ({result.GuestVerdict})";

    /// <summary>Writes the report of <paramref name="result"/>.</summary>
    public static void Write(SwapDemoResult result, ReportWriter writer)
    {
        var memtest = result.Memtest;
        writer.Title($"hv demo swap: {(result.Succeeded ? "guest memory swapped out and back intact" : "FAILED: " + Failure(result))}");
        writer.Section(
            $"Phase 1: memtest over {memtest.RegionPages.ToString("N0", C)} pages of {memtest.GuestBytes >> 20} MiB guest RAM under a host limit of "
            + $"{memtest.HostLimitBytes >> 20} MiB ({(double)memtest.GuestBytes / memtest.HostLimitBytes:0.#}x), swap on {memtest.SwapDevice}, {result.Options.LruPolicy} LRU");
        writer.Paragraph(
            $"{memtest.GuestCorruptedPages.ToString("N0", C)} corrupted pages, {memtest.LostPages.ToString("N0", C)} lost pages "
                + $"(guest check word by word: {memtest.GuestVerdict}; host read-back through swap-in: {memtest.HostCorruptedPages.ToString("N0", C)} pages differ)",
            $"{memtest.Audits.ToString("N0", C)} audits by the host MM auditor and the MMU auditor, at quiescent points: after each of {N(memtest.KswapdAudits)} kswapd steps "
                + $"and after each of {N(memtest.DirectAudits)} slices of guest code and {N(memtest.ReadBackAudits)} pages of the read-back whose faults reclaimed ({N(memtest.Reclaim.Allocstall)} direct reclaims): "
                + (memtest.AuditViolations.Count == 0 ? "all clean" : $"{memtest.AuditViolations.Count} violation(s), first: {memtest.AuditViolations[0]}"));
        var counters = new ReportTable(new ReportColumn("counter"), new ReportColumn("value", AlignRight: true), new ReportColumn("what it counts", Wrap: true));
        var r = memtest.Reclaim;
        counters.AddRow("pswpout", N(r.Pswpout), "pages written to swap");
        counters.AddRow("pswpin", N(r.Pswpin), "pages read from swap (guest faults and the host's read-back)");
        counters.AddRow("pgscan", N(r.Pgscan), $"pages scanned by reclaim ({N(r.PgscanKswapd)} kswapd, {N(r.PgscanDirect)} direct)");
        counters.AddRow("pgsteal", N(r.Pgsteal), "pages reclaimed");
        counters.AddRow("pgactivate", N(r.Pgactivate), "pages moved to the active list");
        counters.AddRow("workingset_refault_anon", N(r.WorkingsetRefaultAnon), "refaults of recently evicted pages");
        counters.AddRow("swap-cache hits", N(r.SwapCacheHits), "swap faults served from the swap cache");
        counters.AddRow("readahead hits", $"{N(r.SwapRaHit)} / {N(r.SwapRa)}", "readahead pages later used / read");
        counters.AddRow("secondary-young answers", $"{N(r.SecondaryYoungHits)} / {N(r.SecondaryYoungQueries)}", "young / asked: the EPT accessed bits reaching the host's LRU");
        counters.AddRow("resident / swapped at exit", $"{N(memtest.ResidentAtExit)} / {N(memtest.SwappedAtExit)}", "pages of the region when the guest exited");
        counters.AddRow("time", $"{memtest.Elapsed.TotalSeconds.ToString("0.0", C)} s", "the guest's run, audits included");
        writer.Table(counters);

        if (result.Aging.Count > 0)
        {
            var first = result.Aging[0];
            writer.Section(
                $"Phase 2: the working-set guest (hot {result.Options.HotMib} MiB = {N(first.HotPages)} pages touched on every pass, cold {result.Options.ColdMib} MiB once per round), "
                + $"host limit {result.Options.WorkingSetHostBytes >> 20} MiB");
            var table = new ReportTable(
                new ReportColumn("secondary aging"),
                new ReportColumn("hot set resident after each cold pass", AlignRight: true, Wrap: true),
                new ReportColumn("swap-ins after round 1", AlignRight: true, Wrap: true),
                new ReportColumn("pswpin", AlignRight: true),
                new ReportColumn("pswpout", AlignRight: true),
                new ReportColumn("young / asked", AlignRight: true),
                new ReportColumn("guest"));
            foreach (var row in result.Aging)
            {
                table.AddRow(
                    row.SecondaryAging ? "on" : "off",
                    string.Join(" ", row.HotResidentAfterColdPass.Select(f => (f * 100).ToString("0", C) + "%")),
                    N(row.SwapInsAfterFirstRound),
                    N(row.Reclaim.Pswpin),
                    N(row.Reclaim.Pswpout),
                    $"{N(row.Reclaim.SecondaryYoungHits)} / {N(row.Reclaim.SecondaryYoungQueries)}",
                    row.GuestPassed ? "OK" : "FAILED");
            }

            writer.Table(table);
            writer.Paragraph(
            [
                .. result.Aging.Select(row => $"secondary aging {(row.SecondaryAging ? "on" : "off")}: {row.GuestVerdict}; {N(row.Reclaim.WorkingsetRefaultAnon)} workingset refaults"
                    + (result.Options.LruPolicy == LruPolicy.MultiGen
                        ? $" ({N(row.Reclaim.WorkingsetRestoreAnon)} of workingset pages); {N(row.Reclaim.MglruTierProtections)} evictions skipped for a protected tier"
                        : string.Empty)),
                "on: the host's aging asks the secondary MMU (clear_flush_young / clear_young) and counts the EPT accessed bits the guest set;",
                "off: the answers are ignored, so the host sees only its own PTEs' accessed bits, which guest accesses through the EPT never set.",
            ]);
        }

        if (result.DirtyPolicies.Count == 2)
        {
            var zap = result.DirtyPolicies[0];
            var map = result.DirtyPolicies[1];
            writer.Section("Phase 3: phase 1's memtest under each dirty tracking policy of the EPT MMU (no audits)");
            var table = new ReportTable(
                new ReportColumn("dirty policy"),
                new ReportColumn("pswpout", AlignRight: true),
                new ReportColumn("pswpin", AlignRight: true),
                new ReportColumn("marked dirty on map", AlignRight: true, Wrap: true),
                new ReportColumn("dirty reported on zap", AlignRight: true, Wrap: true),
                new ReportColumn("guest"));
            foreach (var row in result.DirtyPolicies)
            {
                table.AddRow(
                    row.Policy == GuestMmu.Mmu.DirtyTrackingPolicy.OnMap ? "map (6.13+)" : "zap (default)",
                    N(row.Pswpout),
                    N(row.Pswpin),
                    N(row.DirtyMarkedOnMap),
                    N(row.DirtyPropagated),
                    row.GuestPassed ? "OK" : "FAILED");
            }

            writer.Table(table);
            var extra = map.Pswpout - zap.Pswpout;
            writer.Paragraph(
                $"The map-time policy wrote {N(extra)} more pages to swap ({(zap.Pswpout == 0 ? 0 : 100.0 * extra / zap.Pswpout).ToString("0", C)}% more): a page swapped in for a read "
                + "and mapped writable is marked dirty, so its clean swap copy cannot be reused when it is evicted again; the zap-time policy pays "
                + "instead on every zap of dirty sptes (see the EptZapDirtyTracking benchmark).");
        }
    }

    /// <summary>What went wrong, in one line (empty when the demo succeeded).</summary>
    public static string Failure(SwapDemoResult result)
    {
        var memtest = result.Memtest;
        var reasons = new List<string>();
        if (memtest.Stop != Machine.VmStopKind.GuestExit || memtest.GuestExitCode != 0)
        {
            reasons.Add($"phase 1's guest did not pass ({memtest.GuestVerdict})");
        }

        if (memtest.GuestCorruptedPages + memtest.HostCorruptedPages + memtest.LostPages > 0)
        {
            reasons.Add($"{memtest.GuestCorruptedPages + memtest.HostCorruptedPages} corrupted and {memtest.LostPages} lost pages");
        }

        if (memtest.AuditViolations.Count > 0)
        {
            reasons.Add($"the auditors found {memtest.AuditViolations.Count} violation(s): {memtest.AuditViolations[0]}");
        }

        if (memtest.Reclaim.Pswpout == 0 || memtest.Reclaim.Pswpin == 0 || memtest.Audits == 0)
        {
            reasons.Add("phase 1 did not swap (no page went out and back) or ran no audit");
        }

        foreach (var row in result.DirtyPolicies.Where(row => !row.GuestPassed))
        {
            reasons.Add($"phase 3's guest with the dirty policy {row.Policy} did not pass");
        }

        foreach (var row in result.Aging.Where(row => !row.GuestPassed))
        {
            reasons.Add($"phase 2's guest with secondary aging {(row.SecondaryAging ? "on" : "off")} did not pass ({row.GuestVerdict})");
        }

        if (result.Aging.Count == 2 && result.Aging[0].MeanHotResident <= result.Aging[1].MeanHotResident)
        {
            reasons.Add("secondary aging did not keep more of the hot set resident");
        }

        return string.Join("; ", reasons);
    }

    private static string N(long value) => value.ToString("N0", C);
}
