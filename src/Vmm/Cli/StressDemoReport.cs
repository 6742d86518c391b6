using System.Globalization;
using Hypervisor.Vmm.Cli.Output;
using Hypervisor.Vmm.Demo.Stress;

namespace Hypervisor.Vmm.Cli;

/// <summary>
/// The closing report of <c>hv demo stress</c>: each mechanism's operations per second and effect, the secondary MMU's
/// zaps, refaults, retries and waits with the worst invalidation and shootdown latencies, the guest's verification, the
/// DMA engine's copies and cache, and the audits, ending with the line "N auditor violations, M corrupted pages" (the
/// guest's corrupted pages and the DMA destinations' together).
/// </summary>
internal static class StressDemoReport
{
    private static readonly CultureInfo C = CultureInfo.InvariantCulture;

    /// <summary>The last line of the report.</summary>
    public static string Verdict(StressDemoResult result) =>
        $"{N(result.AuditViolationCount)} auditor violations, {N(result.AllCorruptedPages)} corrupted pages";

    /// <summary>Writes the report of <paramref name="result"/>.</summary>
    public static void Write(StressDemoResult result, ReportWriter writer)
    {
        var o = result.Options;
        writer.Title($"hv demo stress: {(result.Succeeded ? "every mechanism ran under the guest, no stale translation seen" : result.ChecksHeld ? "INCONCLUSIVE: " + Inconclusive(result) : "FAILED: " + Failure(result))}");
        writer.Section(string.Create(
            C,
            $"seed {o.Seed}: {o.Vcpus} vCPU(s) writing and verifying {o.EffectiveRegionBytes >> 20} MiB each in {o.GuestBytes >> 20} MiB of guest RAM, {result.StressElapsed.TotalSeconds:0.0} s of stress on a 2-node host"));
        var table = new ReportTable(
            new ReportColumn("mechanism"),
            new ReportColumn("operations", AlignRight: true),
            new ReportColumn("per second", AlignRight: true),
            new ReportColumn("effect", AlignRight: true),
            new ReportColumn("what they were and did", Wrap: true));
        foreach (var m in result.Mechanisms)
        {
            string[] cells = [m.Name, N(m.Operations), m.OperationsPerSecond.ToString("N1", C), N(m.Effect), $"{m.OperationName}; effect: {m.EffectName}{(m.Detail.Length > 0 ? "; " + m.Detail : string.Empty)}"];
            if (m.Active || o.Without.Contains(m.Kind))
            {
                table.AddRow(cells);
            }
            else
            {
                table.AddEmphasisedRow(cells);
            }
        }

        writer.Table(table);
        var mmu = new ReportTable(new ReportColumn("figure"), new ReportColumn("value", AlignRight: true), new ReportColumn("what it counts", Wrap: true));
        mmu.AddRow("EPT violations", N(result.EptViolations), "the guest's faults: first touches and refaults after every zap");
        mmu.AddEmphasisedRow("sptes zapped", N(result.SptesZapped), $"by {N(result.Invalidations)} notifier invalidations and the memslot changes");
        mmu.AddRow("fault retries", N(result.FaultRetries), "faults that started again because an invalidation touched their gfn");
        mmu.AddRow("invalidation waits", N(result.InvalidationWaits), "retries that first waited for an invalidation in progress to end");
        mmu.AddEmphasisedRow("worst invalidation", Ms(result.WorstInvalidation), $"start to end of one invalidation (mean {Ms(result.MeanInvalidation)} over {N(result.InvalidationsTimed)})");
        mmu.AddRow("TLB shootdowns", N(result.Shootdowns), $"{N(result.ShootdownWaits)} waited for a vCPU in guest mode");
        mmu.AddEmphasisedRow("worst shootdown", Ms(result.WorstShootdown), $"request to last acknowledgement (mean {Ms(result.MeanShootdown)})");
        mmu.AddRow("memory-fault exits", N(result.MemoryFaultExits), "guest writes into a read-only window, resolved by the VMM; the vCPU ran on");
        mmu.AddRow("guest passes", N(result.GuestPasses), $"{N(result.PagesVerified)} pages written and verified, {N(result.DiscardedPages)} found dropped by an announced DONTNEED");
        if (result.Dma is { } dma)
        {
            mmu.AddRow("DMA copies verified", N(dma.Copies), string.Create(C, $"{N(dma.Bytes)} bytes; {N(result.DmaVerifiedPages)} destination pages read back intact, {N(result.DmaCorruptedPages)} wrong"));
            mmu.AddRow("DMA cache hit rate", dma.HitRate.ToString("P1", C), $"{N(dma.Hits)} translations from the cache, {N(dma.Misses)} resolved through get-user-pages");
            mmu.AddRow("DMA invalidations", N(dma.Invalidations), $"cached translations dropped by {N(dma.EventsRead)} user-channel events; {N(dma.Retries)} copies redone after the generation moved, {N(dma.Barriers)} grace-period waits");
            mmu.AddEmphasisedRow("stale DMAs", N(dma.StaleDmas), "copies that used a frame the host no longer mapped there (the engine's own check)");
        }

        mmu.AddRow("audit passes", N(result.AuditPasses), $"host MM and MMU auditors with everything stopped; the longest stop {Ms(result.LongestAuditPause)}");
        writer.Table(mmu);
        var lines = new List<string>();
        if (result.Problem is { } problem)
        {
            lines.Add($"Problem: {problem}");
        }

        lines.AddRange(result.AuditViolations.Select(v => $"Violation: {v}"));
        lines.AddRange(result.CorruptionLines.Select(l => $"Guest: {l}"));
        lines.AddRange(result.DmaCorruptionLines.Select(l => $"DMA: {l}"));
        lines.Add($"Guest: {result.Verdict}");
        lines.Add(string.Create(C, $"Time: {result.Elapsed.TotalSeconds:0.0} s. Rerun with --seed {o.Seed} for the same host operations."));
        lines.Add(Verdict(result));
        writer.Paragraph([.. lines]);
    }

    /// <summary>
    /// Why a run whose checks all held proves less than it should, in one line: the mechanisms that never acted, and what
    /// to do about it.
    /// </summary>
    public static string Inconclusive(StressDemoResult result)
    {
        var idle = result.IdleMechanisms;
        var what = string.Join("; ", idle.Select(m => $"{m.Name}: {N(m.Operations)} {m.OperationName}, {N(m.Effect)} {m.EffectName}"));
        var names = string.Join(' ', idle.Select(m => StressMechanismNames.Of(m.Kind)));
        var leaveOut = idle.All(m => StressSchedule.Scheduled.Contains(m.Kind)) ? $", or leave them out with --without {names}" : string.Empty;
        return string.Create(
            C,
            $"inconclusive: every check held, but in {result.StressElapsed.TotalSeconds:0.0} s some mechanisms never reached guest memory ({what}); run longer with --duration{leaveOut}");
    }

    /// <summary>What went wrong, in one line (empty when the run succeeded).</summary>
    public static string Failure(StressDemoResult result)
    {
        var reasons = new List<string>();
        if (result.Problem is { } problem)
        {
            reasons.Add(problem);
        }

        if (result.AuditViolationCount > 0 || result.AllCorruptedPages > 0)
        {
            reasons.Add(Verdict(result));
        }

        if (result.StaleDmas > 0)
        {
            reasons.Add($"{N(result.StaleDmas)} stale DMAs");
        }

        if (result.AuditViolations.Count > 0)
        {
            reasons.Add($"first violation: {result.AuditViolations[0]}");
        }

        if (result.GuestExitCode != 0)
        {
            reasons.Add($"the guest did not pass ({result.Verdict})");
        }

        if (result.AuditPasses == 0)
        {
            reasons.Add("no audit ran");
        }

        foreach (var m in result.Mechanisms.Where(m => !m.Active && !result.Options.Without.Contains(m.Kind)))
        {
            reasons.Add($"{m.Name}: {N(m.Operations)} {m.OperationName}, {N(m.Effect)} {m.EffectName}");
        }

        return string.Join("; ", reasons);
    }

    private static string N(long value) => value.ToString("N0", C);

    private static string Ms(TimeSpan time) => time.TotalMilliseconds.ToString("N3", C) + " ms";
}
