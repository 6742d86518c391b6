using System.Globalization;
using Hypervisor.Vmm.Cli.Output;
using Hypervisor.Vmm.Demo.Dma;

namespace Hypervisor.Vmm.Cli;

/// <summary>
/// The closing report of <c>hv demo dma</c>: the safe and the unsafe phase side by side — copies, the cache's hits,
/// misses and invalidations, the debug check's stale DMAs, what the host did to the buffers, the guest's verdict.
/// </summary>
internal static class DmaDemoReport
{
    private static readonly CultureInfo C = CultureInfo.InvariantCulture;

    /// <summary>Writes the report of <paramref name="result"/>.</summary>
    public static void Write(DmaDemoResult result, ReportWriter writer)
    {
        var o = result.Options;
        var safe = result.Safe;
        var @unsafe = result.Unsafe;
        writer.Title(result.Succeeded
            ? $"hv demo dma: the registration cache made {N(safe.Dma.Copies)} copies with 0 stale DMAs; without the channel {N(@unsafe.Dma.StaleDmas)} of {N(@unsafe.Dma.Copies)} copies were stale"
            : "hv demo dma: FAILED: " + result.Failure);
        writer.Section(
            $"dmatest on {o.GuestBytes >> 20} MiB: {o.Buffers} source and {o.Buffers} destination buffers of {o.PagesPerBuffer} pages, {N(o.Rounds)} rounds of {N(o.Passes)} copy-and-verify passes; "
            + $"a host thread strikes a random buffer every {o.PressureInterval.TotalMilliseconds.ToString("0.#", C)} ms in turn with MADV_PAGEOUT, a KSM scan, move_pages to the other node, munmap + re-mmap; seed {o.Seed}");
        var table = new ReportTable(
            new ReportColumn("figure"),
            new ReportColumn("safe", AlignRight: true),
            new ReportColumn("unsafe", AlignRight: true),
            new ReportColumn("what it counts", Wrap: true));
        void Row(string figure, Func<DmaDemoPhase, string> value, string what, bool emphasis = false)
        {
            string[] cells = [figure, value(safe), value(@unsafe), what];
            if (emphasis)
            {
                table.AddEmphasisedRow(cells);
            }
            else
            {
                table.AddRow(cells);
            }
        }

        Row("copies", p => N(p.Dma.Copies), $"DMA copies completed, frame to frame ({N(safe.Dma.Bytes >> 10)} / {N(@unsafe.Dma.Bytes >> 10)} KiB)", emphasis: true);
        Row("stale DMAs", p => N(p.Dma.StaleDmas), "copies that used a frame the host PTE no longer mapped (the engine's debug check, independent of the guest)", emphasis: true);
        Row("stale pages", p => $"{N(p.Dma.StalePages)} ({N(p.Dma.StaleFreeFrames)} free)", "pages read or written through a stale translation (of them, frames already freed)");
        Row("blocked writes", p => N(p.Dma.BlockedWrites), "stale writes into a frame that had become a host page table, refused to keep the simulator alive");
        Row("guest mismatches", p => p.GuestVerified ? "0" : p.Verdict.Contains("FAIL", StringComparison.Ordinal) ? "yes" : "n/a", "the guest's own check of every destination word");
        Row("hit rate", p => (p.Dma.HitRate * 100).ToString("0.00", C) + " %", "page translations served from the cache", emphasis: true);
        Row("hits / misses", p => $"{N(p.Dma.Hits)} / {N(p.Dma.Misses)}", "translations from the cache / through get-user-pages");
        Row("invalidations", p => N(p.Dma.Invalidations), "cached translations dropped because a user-channel event covered them", emphasis: true);
        Row("events read", p => N(p.Dma.EventsRead), "invalidate events read from the user channel after the generation counter moved");
        Row("retries", p => N(p.Dma.Retries), "copies redone because the counter moved during their acquire or copy");
        Row("grace periods", p => N(p.Dma.Barriers), "waits for invalidations in flight to end before resolving again: after reading events (the channel reports starts only) and when a buffer is first registered");
        Row("regions", p => N(p.Dma.Regions), "buffer ranges registered by cookie on the channel");
        Row("page-outs", p => $"{N(p.Pressure.PageOuts)} ({N(p.Pressure.PagesSwappedOut)} pages)", "MADV_PAGEOUT calls on a buffer (pages written to swap)");
        Row("KSM scans", p => $"{N(p.Pressure.KsmSteps)} ({N(p.Pressure.PagesMerged)} merged)", "scanner steps over the buffers (pages merged into KSM pages)");
        Row("migrations", p => $"{N(p.Pressure.Migrations)} ({N(p.Pressure.PagesMigrated)} pages)", "move_pages calls to the other NUMA node (pages moved)");
        Row("remaps", p => $"{N(p.Pressure.Remaps)} ({N(p.Pressure.UnreadablePages)} unreadable)", "buffers unmapped and mapped again (MAP_FIXED), contents restored, with the vCPU held (pages whose swap slot failed its checksum, restored as zeros)");
        Row("time", p => p.Elapsed.TotalSeconds.ToString("0.0", C) + " s", "wall time of the phase");
        writer.Table(table);
        writer.Paragraph(
            $"Safe: {safe.Verdict}",
            $"Unsafe: {@unsafe.Verdict}{(@unsafe.Mismatches.Count > 0 ? " — first: " + @unsafe.Mismatches[0] : string.Empty)}",
            "Audits after each phase (host MM auditor, MMU auditor): "
                + $"safe {(safe.AuditViolations.Count == 0 ? "clean" : $"{safe.AuditViolations.Count} violation(s), first: {safe.AuditViolations[0]}")}; "
                + $"unsafe {(@unsafe.AuditViolations.Count == 0 ? "clean" : $"{@unsafe.AuditViolations.Count} violation(s), first: {@unsafe.AuditViolations[0]}")}.");
    }

    private static string N(long value) => value.ToString("N0", C);
}
