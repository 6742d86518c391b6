using System.Globalization;
using Hypervisor.Vmm.Accel;
using Hypervisor.Vmm.Cli.Output;
using Hypervisor.Vmm.Devices;
using Hypervisor.Vmm.Machine;

namespace Hypervisor.Vmm.Cli;

/// <summary>
/// The closing report of <c>hv run</c> with several VMs on one host: a title with how many VMs ended how and the exit
/// status, one paragraph per VM that did not exit normally (its detail, and its registers when it broke), then a table
/// with one column per VM (<c>[i] image</c>) and one for the host (sums, and what only the shared host has).
/// </summary>
internal static class RunGroupReport
{
    /// <summary>Writes the report.</summary>
    /// <param name="results">Each VM's result, in index order.</param>
    /// <param name="vms">The VMs, in index order.</param>
    /// <param name="machine">The host they shared.</param>
    /// <param name="names">Each VM's image file name.</param>
    /// <param name="copies">True when the VMs are <c>--vms</c> copies of one image (the title says so).</param>
    /// <param name="wallClock">How long the whole run took, from the first VM's start to the last VM's end.</param>
    /// <param name="writer">Where the report goes.</param>
    public static void Write(IReadOnlyList<VmRunResult> results, IReadOnlyList<Vm> vms, HostMachine machine, IReadOnlyList<string> names, bool copies, TimeSpan wallClock, ReportWriter writer)
    {
        var c = CultureInfo.InvariantCulture;
        var exitCode = ExitCode(results);
        writer.Title(Title(names, copies, results, exitCode));
        for (var i = 0; i < results.Count; i++)
        {
            var result = results[i];
            if (result.Kind is not VmStopKind.GuestExit)
            {
                var prefix = PrefixedLineWriter.PrefixOf(i);
                writer.Paragraph(VmExitStatus.BreaksTheVm(result.Kind) && result.Registers is { } registers
                    ? [prefix + result.Detail, .. RegisterFormatter.Lines(registers).Select(l => prefix + l)]
                    : [prefix + result.Detail]);
            }
        }

        if (results.Count > MaxVmColumns)
        {
            WriteRows(results, vms, machine, names, wallClock, exitCode, writer);
            return;
        }

        var columns = new List<ReportColumn> { new("figure") };
        columns.AddRange(names.Select((name, i) => new ReportColumn(PrefixedLineWriter.PrefixOf(i) + name, AlignRight: true)));
        columns.Add(new ReportColumn("host", AlignRight: true));
        var table = new ReportTable([.. columns]);
        void Row(string figure, Func<VmRunResult, Vm, string> perVm, string host, bool emphasis = false)
        {
            string[] cells = [figure, .. results.Select((r, i) => perVm(r, vms[i])), host];
            if (emphasis)
            {
                table.AddEmphasisedRow(cells);
            }
            else
            {
                table.AddRow(cells);
            }
        }

        long Sum(Func<VmRunResult, long> figure) => results.Sum(figure);

        Row("exit", (r, _) => Outcome(r), $"status {exitCode.ToString(c)}", emphasis: true);
        Row("boot", (_, vm) => vm.Protocol.ToString(), $"{results.Count} VMs × {vms[0].Options.MemoryBytes >> 20} MiB");
        var instructions = Sum(r => r.Cpu.Instructions);
        Row("instructions", (r, _) => r.Cpu.Instructions.ToString("N0", c), instructions.ToString("N0", c), emphasis: true);
        Row("time", (r, _) => $"{r.Elapsed.TotalMilliseconds.ToString("N1", c)} ms", $"{wallClock.TotalMilliseconds.ToString("N1", c)} ms");
        var aggregateMips = wallClock.TotalSeconds <= 0 ? 0 : instructions / wallClock.TotalSeconds / 1e6;
        Row("MIPS", (r, _) => Mips(r.Mips), Mips(aggregateMips), emphasis: true);
        Row("EPT violations", (r, _) => r.Mmu.Faults.ToString("N0", c), Sum(r => r.Mmu.Faults).ToString("N0", c));
        Row("sptes present", (r, _) => r.Mmu.PresentSptes.ToString("N0", c), Sum(r => r.Mmu.PresentSptes).ToString("N0", c));
        Row("sptes zapped", (r, _) => r.Mmu.Zapped.ToString("N0", c), Sum(r => r.Mmu.Zapped).ToString("N0", c));
        Row("TLB hit rate", (r, _) => Percent(r.TlbHitRate), string.Empty);
        if (vms[0].Options.HostForkInterval is not null)
        {
            Row("host forks", (r, _) => r.HostForks.ToString("N0", c), Sum(r => r.HostForks).ToString("N0", c));
        }

        var host = machine.Stats;
        Row("resident pages", (_, vm) => (vm.Process?.Stats.RssPages ?? 0).ToString("N0", c), host.RssPages.ToString("N0", c));
        Row(
            "host frames in use",
            (_, _) => string.Empty,
            $"{host.Memory.AllocatedFrames.ToString("N0", c)} of {host.Memory.TotalFrames.ToString("N0", c)}",
            emphasis: true);
        if (results[0].HostMemory is not null)
        {
            AddHostMemoryRows(table, results, machine);
        }

        if (results[0].Ksm is not null)
        {
            AddKsmRows(table, results, machine);
        }

        if (vms[0].Options.NumaNodes is not null)
        {
            var perNode = vms.Select(vm => vm.GuestMemory?.ResidentPagesPerNode() ?? []).ToList();
            var nodes = machine.Host.Memory.NodeCount;
            var total = Enumerable.Range(0, nodes).Select(n => perNode.Sum(p => p.Length > n ? p[n] : 0)).ToArray();
            Row("guest pages per node", (_, vm) => RunReport.PerNode(perNode[vms.ToList().IndexOf(vm)]), RunReport.PerNode(total), emphasis: true);
            var m = machine.Host.Migration.Stats;
            Row("pgmigrate_success / fail", (_, _) => string.Empty, $"{m.PgmigrateSuccess.ToString("N0", c)} / {m.PgmigrateFail.ToString("N0", c)}");
            Row("migration-entry waits (gup)", (_, vm) => vm.Process is { } p ? $"{p.MigrationEntryWaits.ToString("N0", c)} ({p.GupMigrationEntryWaits.ToString("N0", c)})" : string.Empty, string.Empty);
        }

        if (results[0].Dma is not null)
        {
            long DmaSum(Func<Hypervisor.Vmm.Devices.Dma.DmaEngineCounters, long> figure) => results.Sum(r => r.Dma is { } d ? figure(d) : 0);
            Row("DMA copies", (r, _) => (r.Dma?.Copies ?? 0).ToString("N0", c), DmaSum(d => d.Copies).ToString("N0", c), emphasis: true);
            Row("DMA cache hit rate", (r, _) => Percent(r.Dma?.HitRate ?? 0), string.Empty);
            Row("DMA invalidations", (r, _) => (r.Dma?.Invalidations ?? 0).ToString("N0", c), DmaSum(d => d.Invalidations).ToString("N0", c));
            Row("stale DMAs", (r, _) => (r.Dma?.StaleDmas ?? 0).ToString("N0", c), DmaSum(d => d.StaleDmas).ToString("N0", c), emphasis: true);
        }

        if (vms[0].Options.LegacyChangePte)
        {
            Row("change_pte hits", (r, _) => $"{r.Mmu.ChangePteHits.ToString("N0", c)} / {(r.Mmu.ChangePteHits + r.Mmu.ChangePteMisses).ToString("N0", c)}", $"{Sum(r => r.Mmu.ChangePteHits).ToString("N0", c)} / {Sum(r => r.Mmu.ChangePteHits + r.Mmu.ChangePteMisses).ToString("N0", c)}", emphasis: true);
        }

        writer.Table(table);
        writer.Paragraph(
            "resident pages: each VM's host process RSS, and their sum; host frames in use: the one frame pool every VM draws on (guest pages, host and EPT page tables, the zero page).",
            results[0].HostMemory is null
                ? "MIPS (host): all VMs' instructions over the wall-clock time of the whole run."
                : "cgroup rows are each VM's own memory cgroup (--host-mem is per VM); reclaim and swap rows are the host's, shared by every VM.");
    }

    /// <summary>Up to this many VMs the table has a column per VM; beyond, a row per VM (a table a terminal can show).</summary>
    public const int MaxVmColumns = 8;

    /// <summary>The exit status of the whole run: the first non-zero exit code in VM order (each VM's as a lone <c>hv run</c> would return it), else 0.</summary>
    /// <param name="results">Each VM's result, in index order.</param>
    public static int ExitCode(IReadOnlyList<VmRunResult> results)
    {
        ArgumentNullException.ThrowIfNull(results);
        return results.Select(r => r.ExitCode).FirstOrDefault(code => code != 0);
    }

    /// <summary>The report's first line: the images, how the VMs ended and the exit status.</summary>
    /// <param name="names">Each VM's image file name.</param>
    /// <param name="copies">True when the VMs are <c>--vms</c> copies of one image.</param>
    /// <param name="results">Each VM's result.</param>
    /// <param name="exitCode">The run's exit status.</param>
    internal static string Title(IReadOnlyList<string> names, bool copies, IReadOnlyList<VmRunResult> results, int exitCode)
    {
        var images = copies ? $"{names[0]} --vms {names.Count}" : string.Join(' ', names);
        var zero = results.Count(r => r.ExitCode == 0);
        var outcome = zero == results.Count
            ? $"all {results.Count} VMs exited with code 0"
            : $"{zero} of {results.Count} VMs exited with code 0, the first other is VM {results.Select((r, i) => (r, i)).First(p => p.r.ExitCode != 0).i} ({Outcome(results.First(r => r.ExitCode != 0))})";
        return $"hv run {images}: {outcome}, exit status {exitCode}";
    }

    // More VMs than columns fit: a row per VM with its main figures and a row for the host, then the host's own figures.
    private static void WriteRows(IReadOnlyList<VmRunResult> results, IReadOnlyList<Vm> vms, HostMachine machine, IReadOnlyList<string> names, TimeSpan wallClock, int exitCode, ReportWriter writer)
    {
        var c = CultureInfo.InvariantCulture;
        var swapping = results[0].HostMemory is not null;
        List<ReportColumn> columns =
        [
            new("VM"), new("exit", AlignRight: true), new("instructions", AlignRight: true), new("time", AlignRight: true),
            new("MIPS", AlignRight: true), new("EPT violations", AlignRight: true), new("resident pages", AlignRight: true),
        ];
        if (swapping)
        {
            columns.Add(new ReportColumn("pages on swap", AlignRight: true));
        }

        var table = new ReportTable([.. columns]);
        for (var i = 0; i < results.Count; i++)
        {
            var r = results[i];
            string[] cells =
            [
                PrefixedLineWriter.PrefixOf(i) + names[i], Outcome(r), r.Cpu.Instructions.ToString("N0", c),
                $"{r.Elapsed.TotalMilliseconds.ToString("N1", c)} ms", Mips(r.Mips), r.Mmu.Faults.ToString("N0", c),
                (vms[i].Process?.Stats.RssPages ?? 0).ToString("N0", c),
            ];
            table.AddRow(swapping ? [.. cells, r.HostMemory!.SwappedPages.ToString("N0", c)] : cells);
        }

        var instructions = results.Sum(r => r.Cpu.Instructions);
        var host = machine.Stats;
        string[] total =
        [
            "host", $"status {exitCode.ToString(c)}", instructions.ToString("N0", c), $"{wallClock.TotalMilliseconds.ToString("N1", c)} ms",
            Mips(wallClock.TotalSeconds <= 0 ? 0 : instructions / wallClock.TotalSeconds / 1e6), results.Sum(r => r.Mmu.Faults).ToString("N0", c),
            host.RssPages.ToString("N0", c),
        ];
        table.AddEmphasisedRow(swapping ? [.. total, results.Sum(r => r.HostMemory!.SwappedPages).ToString("N0", c)] : total);
        writer.Table(table);
        List<string> lines =
        [
            $"host frames in use: {host.Memory.AllocatedFrames.ToString("N0", c)} of {host.Memory.TotalFrames.ToString("N0", c)}, one pool for {results.Count} VMs × {vms[0].Options.MemoryBytes >> 20} MiB (their resident pages, host and EPT page tables, the zero page).",
        ];
        if (results[0].Ksm is not null)
        {
            lines.Add(KsmLine(results, machine));
        }

        if (results[^1].HostMemory is { } memory)
        {
            var r = memory.Reclaim;
            lines.Add(string.Create(c, $"--host-mem {memory.LimitBytes >> 20} MiB per VM (one cgroup each); the host's reclaim for all: pswpout {r.Pswpout:N0}, pswpin {r.Pswpin:N0}, pgscan {r.Pgscan:N0}, pgsteal {r.Pgsteal:N0}, kswapd steps {machine.ReclaimDaemon?.Steps ?? 0:N0}, allocstall {r.Allocstall:N0}; swap slots used {memory.Swap.UsedSlots:N0} of {memory.Swap.TotalSlots:N0}."));
        }

        writer.Paragraph([.. lines]);
    }

    private static void AddHostMemoryRows(ReportTable table, IReadOnlyList<VmRunResult> results, HostMachine machine)
    {
        var c = CultureInfo.InvariantCulture;
        var memories = results.Select(r => r.HostMemory!).ToList();
        var last = memories[^1];
        var r = last.Reclaim;
        string[] Cells(string figure, Func<HostMemorySnapshot, string> perVm, string host) => [figure, .. memories.Select(perVm), host];
        table.AddRow(Cells("cgroup limit", m => $"{(m.LimitBytes >> 20).ToString("N0", c)} MiB", "per VM"));
        table.AddRow(Cells("cgroup peak", m => $"{(m.Cgroup.PeakPages * 4096 >> 20).ToString("N0", c)} MiB", string.Empty));
        table.AddRow(Cells("charges at the limit", m => m.Cgroup.MaxEvents.ToString("N0", c), memories.Sum(m => m.Cgroup.MaxEvents).ToString("N0", c)));
        table.AddRow(Cells("pages on swap", m => m.SwappedPages.ToString("N0", c), memories.Sum(m => m.SwappedPages).ToString("N0", c)));
        table.AddEmphasisedRow(Cells("pswpout", _ => string.Empty, r.Pswpout.ToString("N0", c)));
        table.AddEmphasisedRow(Cells("pswpin", _ => string.Empty, r.Pswpin.ToString("N0", c)));
        table.AddRow(Cells("pgscan", _ => string.Empty, r.Pgscan.ToString("N0", c)));
        table.AddRow(Cells("pgsteal", _ => string.Empty, r.Pgsteal.ToString("N0", c)));
        table.AddRow(Cells("kswapd steps", _ => string.Empty, (machine.ReclaimDaemon?.Steps ?? 0).ToString("N0", c)));
        table.AddRow(Cells("allocstall", _ => string.Empty, r.Allocstall.ToString("N0", c)));
        table.AddRow(Cells("swap slots used", _ => string.Empty, $"{last.Swap.UsedSlots.ToString("N0", c)} of {last.Swap.TotalSlots.ToString("N0", c)}"));
    }

    private static void AddKsmRows(ReportTable table, IReadOnlyList<VmRunResult> results, HostMachine machine)
    {
        var c = CultureInfo.InvariantCulture;
        var snapshots = results.Select(r => r.Ksm!).ToList();
        var k = machine.Host.Ksm.Stats;
        string[] Cells(string figure, Func<KsmSnapshot, string> perVm, string host) => [figure, .. snapshots.Select(perVm), host];
        table.AddEmphasisedRow(Cells("ksm_merging_pages", s => s.Process.MergingPages.ToString("N0", c), snapshots.Sum(s => s.Process.MergingPages).ToString("N0", c)));
        table.AddRow(Cells("pages_shared", _ => string.Empty, k.PagesShared.ToString("N0", c)));
        table.AddEmphasisedRow(Cells("pages_sharing", _ => string.Empty, k.PagesSharing.ToString("N0", c)));
        table.AddEmphasisedRow(Cells("general_profit", _ => string.Empty, $"{(k.GeneralProfit / (1024.0 * 1024.0)).ToString("N1", c)} MiB"));
        table.AddRow(Cells("ksm_zero_pages", s => s.Process.ZeroPages.ToString("N0", c), k.KsmZeroPages.ToString("N0", c)));
        table.AddRow(Cells("full_scans", _ => string.Empty, k.FullScans.ToString("N0", c)));
        table.AddEmphasisedRow(Cells("cow_ksm", _ => string.Empty, machine.Host.Stats.CowKsm.ToString("N0", c)));
    }

    private static string KsmLine(IReadOnlyList<VmRunResult> results, HostMachine machine)
    {
        var k = machine.Host.Ksm.Stats;
        return string.Create(
            CultureInfo.InvariantCulture,
            $"--ksm: ksm_merging_pages {string.Join(" ", results.Select(r => r.Ksm!.Process.MergingPages.ToString("N0", CultureInfo.InvariantCulture)))}; host-wide pages_shared {k.PagesShared:N0}, pages_sharing {k.PagesSharing:N0}, general_profit {k.GeneralProfit / (1024.0 * 1024.0):N1} MiB, full_scans {k.FullScans:N0}, cow_ksm {machine.Host.Stats.CowKsm:N0}.");
    }

    private static string Outcome(VmRunResult result) => result.Kind switch
    {
        VmStopKind.GuestExit when result.StopReason == VmStopReason.Reset => "reset (0)",
        VmStopKind.GuestExit => $"code {result.GuestExitCode}",
        VmStopKind.Halted => "halted (5)",
        VmStopKind.TripleFault or VmStopKind.Shutdown => "triple fault (3)",
        VmStopKind.InternalError => "VM broke (3)",
        VmStopKind.HostOutOfMemory => "host OOM (3)",
        VmStopKind.MemoryFailure => "memory failure (3)",
        VmStopKind.InstructionLimit => "instruction limit (4)",
        VmStopKind.Timeout => "timed out (4)",
        VmStopKind.Cancelled => "cancelled (4)",
        _ => "running",
    };

    private static string Mips(double mips) => mips >= 10 ? mips.ToString("N1", CultureInfo.InvariantCulture) : mips.ToString("G3", CultureInfo.InvariantCulture);

    private static string Percent(double fraction) => (fraction * 100).ToString("0.00", CultureInfo.InvariantCulture) + " %";
}
