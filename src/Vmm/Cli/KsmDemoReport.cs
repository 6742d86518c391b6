using System.Globalization;
using Hypervisor.Vmm.Cli.Output;
using Hypervisor.Vmm.Demo.Ksm;

namespace Hypervisor.Vmm.Cli;

/// <summary>
/// The closing report of <c>hv demo ksm</c>: memory before merging, after merging and after the guests' rewrites, under
/// Linux's KSM counter names; each VM's isolation check, change_pte hits and verdict; the audits.
/// </summary>
internal static class KsmDemoReport
{
    private static readonly CultureInfo C = CultureInfo.InvariantCulture;

    /// <summary>Writes the report of <paramref name="result"/>.</summary>
    public static void Write(KsmDemoResult result, ReportWriter writer)
    {
        var o = result.Options;
        writer.Title($"hv demo ksm: {(result.Succeeded ? $"{Mib(result.FramesSaved * 4096)} of host memory saved across {o.Vms} VMs, every VM's pages its own" : "FAILED: " + Failure(result))}");
        writer.Section(
            $"{o.Vms} VMs of {o.GuestBytes >> 20} MiB on one host, each filling {N(o.Pages)} pages with {N(o.Kinds)} contents, then rewriting 1 page in {N(o.Every)} with its own; "
            + $"ksmd pages_to_scan={N(o.PagesToScan)}, sleep_millisecs={N(o.SleepMilliseconds)}, change_pte {(o.LegacyChangePte ? "on (legacy, Linux 2.6.32-6.9)" : "off (Linux 6.10+)")}");
        var table = new ReportTable(
            new ReportColumn("figure"),
            new ReportColumn("before merging", AlignRight: true),
            new ReportColumn("after merging", AlignRight: true),
            new ReportColumn("after the rewrites", AlignRight: true),
            new ReportColumn("what it counts", Wrap: true));
        var snapshots = new[] { result.BeforeMerge, result.AfterMerge, result.AfterRewrite };
        void Row(string figure, Func<KsmDemoSnapshot, string> value, string what, bool emphasis = false)
        {
            string[] cells = [figure, .. snapshots.Select(value), what];
            if (emphasis)
            {
                table.AddEmphasisedRow(cells);
            }
            else
            {
                table.AddRow(cells);
            }
        }

        Row("host frames in use", s => $"{N(s.FramesInUse)} ({Mib(s.FramesInUse * 4096)})", "the one frame pool every VM draws on", emphasis: true);
        Row("resident pages", s => N(s.ResidentPages), "the VMs' RSS summed (a merged page counts once per mapping)");
        Row("pages_shared", s => N(s.Ksm.PagesShared), "KSM pages in use");
        Row("pages_sharing", s => N(s.Ksm.PagesSharing), "further mappings of them: pages saved", emphasis: true);
        Row("general_profit", s => Mib(s.Ksm.GeneralProfit), "bytes saved less the scanner's rmap items", emphasis: true);
        Row("pages_unshared", s => N(s.Ksm.PagesUnshared), "unique pages in the unstable tree");
        Row("pages_volatile", s => N(s.Ksm.PagesVolatile), "pages that changed since their last scan");
        Row("ksm_zero_pages", s => N(s.Ksm.KsmZeroPages), "PTEs mapping the KSM-placed zero page");
        Row("full_scans", s => N(s.Ksm.FullScans), "ksmd's passes over mergeable memory");
        Row("stable_node_chains", s => $"{N(s.Ksm.StableNodeChains)} ({N(s.Ksm.StableNodeDups)} dups)", "contents shared by more than max_page_sharing mappings");
        Row("cow_ksm", s => N(s.CowKsm), "guest writes that broke a merged page copy-on-write", emphasis: true);
        for (var i = 0; i < o.Vms; i++)
        {
            var index = i;
            Row($"[{i}] ksm_merging_pages", s => N(s.MergingPages[index]), "this VM's pages mapped to a shared KSM page");
        }

        writer.Table(table);

        var vms = new ReportTable(
            new ReportColumn("VM"),
            new ReportColumn("salt", AlignRight: true),
            new ReportColumn("pages rewritten", AlignRight: true),
            new ReportColumn("pages not its own", AlignRight: true, Wrap: true),
            new ReportColumn("change_pte hits / calls", AlignRight: true, Wrap: true),
            new ReportColumn("EPT violations", AlignRight: true),
            new ReportColumn("guest"));
        foreach (var vm in result.Vms)
        {
            vms.AddRow(
                $"[{vm.Index}]",
                N(vm.Salt),
                N(vm.RewrittenPages),
                N(vm.ForeignPages),
                $"{N(vm.ChangePteHits)} / {N(vm.ChangePteHits + vm.ChangePteMisses)}",
                N(vm.EptViolations),
                vm.Verdict);
        }

        writer.Table(vms);
        var hits = result.Vms.Sum(v => v.ChangePteHits);
        var calls = hits + result.Vms.Sum(v => v.ChangePteMisses);
        writer.Paragraph(
            $"Isolation: {(result.IsolationPassed ? "passed" : "FAILED")}: after every VM rewrote its pages with its own salt, the host read each VM's {N(o.Pages)} pages back; "
                + "each held its own content (pages not its own: 0 means no VM saw another's write). The guests then re-read and verified their own pages.",
            o.LegacyChangePte
                ? $"change_pte: {N(hits)} of {N(calls)} calls found an spte to retarget. replace_page and the COW break call it inside invalidate_range_start/end, and start has already zapped the spte, so it (almost) never hits: why Linux 6.10 removed it."
                : "change_pte: off, as in Linux 6.10+ (run without --no-legacy-change-pte to count its hits).",
            $"Audits: {N(result.Audits)} by the host MM auditor and every VM's MMU auditor, after every ksmd batch and at each phase's end (after merging and after the rescan with the scanner's settled invariants too), with every guest held: "
                + (result.AuditViolations.Count == 0 ? "all clean." : $"{result.AuditViolations.Count} violation(s), first: {result.AuditViolations[0]}"),
            $"Time: {result.Elapsed.TotalSeconds.ToString("0.0", C)} s{(result.Settled ? string.Empty : " (the scanner did not settle within the phase timeout)")}.");
    }

    /// <summary>What went wrong, in one line (empty when the demo succeeded).</summary>
    public static string Failure(KsmDemoResult result)
    {
        var reasons = new List<string>();
        if (result.Problem is { } problem)
        {
            reasons.Add(problem);
        }

        if (!result.Settled)
        {
            reasons.Add("the scanner did not settle within the phase timeout");
        }

        if (result.AfterMerge.Ksm.PagesSharing == 0 || result.FramesSaved <= 0)
        {
            reasons.Add($"nothing was saved (pages_sharing {N(result.AfterMerge.Ksm.PagesSharing)}, frames saved {N(result.FramesSaved)})");
        }

        if (result.AfterRewrite.CowKsm <= result.BeforeMerge.CowKsm)
        {
            reasons.Add("the rewrites broke no merged page (cow_ksm did not grow)");
        }

        foreach (var vm in result.Vms.Where(v => v.ForeignPages > 0 || v.RewrittenPages == 0))
        {
            reasons.Add($"VM {vm.Index}: {N(vm.ForeignPages)} pages not its own after {N(vm.RewrittenPages)} rewrites");
        }

        foreach (var vm in result.Vms.Where(v => !v.GuestPassed))
        {
            reasons.Add($"VM {vm.Index}'s guest did not pass ({vm.Verdict})");
        }

        if (result.AuditViolations.Count > 0)
        {
            reasons.Add($"the auditors found {result.AuditViolations.Count} violation(s): {result.AuditViolations[0]}");
        }

        if (result.Audits == 0 && result.Options.AuditEveryStep)
        {
            reasons.Add("no audit ran");
        }

        if (!result.Options.AuditEveryStep)
        {
            reasons.Add("audits were off (--no-audit)");
        }

        return string.Join("; ", reasons);
    }

    private static string N(long value) => value.ToString("N0", C);

    private static string Mib(long bytes) => (bytes / (1024.0 * 1024.0)).ToString("N1", C) + " MiB";
}
