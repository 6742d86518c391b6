using System.Globalization;
using Hypervisor.Vmm.Cli.Output;
using Hypervisor.Vmm.Demo.Thp;

namespace Hypervisor.Vmm.Cli;

/// <summary>
/// The closing report of <c>hv demo thp</c>: the THP off / on comparison (EPT violations, EPT table pages, 2 MiB leaves,
/// TLB misses, 2-D walks, guest time), the split storm and collapse pass with pages_2m at each point, the guest's verdict,
/// the host's read-back and the audits.
/// </summary>
internal static class ThpDemoReport
{
    private static readonly CultureInfo C = CultureInfo.InvariantCulture;

    /// <summary>Writes the report of <paramref name="result"/>.</summary>
    public static void Write(ThpDemoResult result, ReportWriter writer)
    {
        var o = result.Options;
        writer.Title($"hv demo thp: {(result.Succeeded ? "2 MiB EPT leaves over host huge pages, split under a running guest and collapsed back, every page intact" : "FAILED: " + Failure(result))}");
        writer.Section($"The ksm guest ({N(o.Pages)} pages, {N(o.Passes)} verify passes per phase, {o.GuestBytes >> 20} MiB of RAM), THP off then --thp always");
        var compare = new ReportTable(
            new ReportColumn("figure"),
            new ReportColumn("THP off", AlignRight: true),
            new ReportColumn("--thp always", AlignRight: true),
            new ReportColumn("what it counts", Wrap: true));
        if (result.Off is { } off && result.On is { } on)
        {
            compare.AddEmphasisedRow("EPT violations", N(off.EptViolations), N(on.EptViolations), "faults into the secondary MMU: one per 4 KiB page touched, or one per 2 MiB");
            compare.AddEmphasisedRow("EPT table pages", N(off.EptTablePages), N(on.EptTablePages), "4 KiB pages of EPT tables at the end (a 2 MiB leaf needs no last-level table)");
            compare.AddEmphasisedRow("pages_2m", N(off.Pages2M), N(on.Pages2M), "2 MiB EPT leaves present at the end (KVM's name)");
            compare.AddRow("pages_4k", N(off.Pages4K), N(on.Pages4K), "4 KiB EPT leaves present at the end");
            compare.AddRow("thp_fault_alloc", N(off.ThpFaultAlloc), N(on.ThpFaultAlloc), "host faults that mapped a 2 MiB page");
            compare.AddRow("TLB misses", N(off.TlbMisses), N(on.TlbMisses), "the interpreter's TLB misses (it caches 4 KiB translations whatever the EPT leaf size)");
            compare.AddRow("2-D walks", N(off.Walks), N(on.Walks), "guest page walks through the EPT (the TLB misses that were not served by the walker's caches)");
            compare.AddRow("instructions", N(off.Instructions), N(on.Instructions), "retired by the interpreter");
            compare.AddEmphasisedRow("guest time", Ms(off.GuestTime), Ms(on.GuestTime), $"running guest code; THP on / off = {(off.GuestTime.TotalMilliseconds > 0 ? (on.GuestTime.TotalMilliseconds / off.GuestTime.TotalMilliseconds).ToString("0.00", C) : "-")}");
            compare.AddRow("guest", off.Verdict, on.Verdict, "the guest's own check of every page");
            writer.Table(compare);
        }

        if (result.Storm is { } s)
        {
            writer.Section("Run 3, --thp always: a split storm under the running guest, then a khugepaged collapse pass");
            var storm = new ReportTable(new ReportColumn("figure"), new ReportColumn("value", AlignRight: true), new ReportColumn("what it counts", Wrap: true));
            storm.AddEmphasisedRow("pages_2m before", N(s.Pages2MBefore), $"2 MiB EPT leaves once the guest had filled and verified its pages ({N(s.HugeLeavesBefore)} host huge leaves)");
            storm.AddRow("mprotect calls", N(s.Mprotects), $"one 4 KiB page (read-write to read-write) in every huge page of guest RAM, in {Ms(s.StormElapsed)}, the guest rewriting under them");
            storm.AddEmphasisedRow("thp_split_pmd", N(s.Splits), $"host huge leaves split; {N(s.SptesZapped)} sptes zapped by their notifier calls");
            storm.AddEmphasisedRow("pages_2m after the storm", N(s.Pages2MAfterStorm), $"once the guest had rewritten its pages: {N(s.Pages4KAfterStorm)} 4 KiB leaves from {N(s.RefaultsAfterStorm)} refaults at 4 KiB");
            storm.AddEmphasisedRow("thp_collapse_alloc", N(s.Collapsed), $"ranges khugepaged collapsed back in {N(s.CollapseSteps)} steps of {N(o.CollapseBudget)} pages ({Ms(s.CollapseElapsed)}); {N(s.HugeLeavesAfterCollapse)} host huge leaves after");
            storm.AddEmphasisedRow("pages_2m at the end", N(s.Pages2MAtEnd), $"after the guest's second verify phase touched its pages again ({N(s.RefaultsAfterCollapse)} EPT violations since the collapse)");
            writer.Table(storm);
        }

        writer.Paragraph(
            $"Guest (run 3): {result.StormRun?.Verdict ?? "did not finish"} (exit code {(result.StormRun?.GuestExitCode is { } code ? code.ToString(C) : "none")}): it checked every page word by word after each phase.",
            $"Host read-back: {N(result.HostCheckedPages)} of the guest's {N(result.GuestPages)} pages read through the host after it exited, {N(result.HostCorruptedPages)} not holding the guest's last writes.",
            $"Audits: {N(result.Audits)} by the host MM auditor and the MMU auditor, before and after the storm and after every khugepaged step, at a quiescent point: "
                + (result.AuditViolations.Count == 0 ? "all clean." : $"{result.AuditViolations.Count} violation(s), first: {result.AuditViolations[0]}"),
            $"Time: {result.Elapsed.TotalSeconds.ToString("0.0", C)} s.");
    }

    /// <summary>What went wrong, in one line (empty when the demo succeeded).</summary>
    public static string Failure(ThpDemoResult result)
    {
        var reasons = new List<string>();
        if (result.Problem is { } problem)
        {
            reasons.Add(problem);
        }

        foreach (var (name, run) in new[] { ("THP off", result.Off), ("--thp always", result.On), ("the storm run", result.StormRun) })
        {
            if (run is null)
            {
                reasons.Add($"{name} did not finish");
            }
            else if (!run.GuestPassed)
            {
                reasons.Add($"the guest did not pass with {name} ({run.Verdict})");
            }
        }

        if (result.Off is { Pages2M: > 0 } off)
        {
            reasons.Add($"THP off mapped {N(off.Pages2M)} 2 MiB sptes");
        }

        if (result.On is { Pages2M: 0 })
        {
            reasons.Add("--thp always mapped no 2 MiB spte");
        }

        if (result.Storm is not { } s)
        {
            reasons.Add("the split storm and collapse pass did not run");
        }
        else
        {
            if (s.Splits == 0 || s.Pages2MAfterStorm >= s.Pages2MBefore)
            {
                reasons.Add($"the storm split {N(s.Splits)} huge pages and pages_2m went from {N(s.Pages2MBefore)} to {N(s.Pages2MAfterStorm)}");
            }

            if (s.Collapsed == 0 || s.Pages2MAtEnd <= s.Pages2MAfterStorm)
            {
                reasons.Add($"khugepaged collapsed {N(s.Collapsed)} ranges and pages_2m went from {N(s.Pages2MAfterStorm)} to {N(s.Pages2MAtEnd)}");
            }
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

    private static string Ms(TimeSpan time) => $"{time.TotalMilliseconds.ToString("N1", C)} ms";
}
