using System.Globalization;
using Hypervisor.Vmm.Machine;
using Spectre.Console;

namespace Hypervisor.Vmm.Cli;

/// <summary>The live Spectre.Console panel of <c>hv run</c> on a terminal: counters and the console tail, refreshed while the guest runs.</summary>
internal static class LivePanel
{
    private const int ConsoleLines = 8;

    // Up to this many VMs the panel has a column per VM; beyond, a row per VM.
    private const int VmColumns = 4;

    /// <summary>Runs <paramref name="vm"/> on a worker thread and refreshes the panel until it stops.</summary>
    public static VmRunResult Run(Vm vm, string name)
    {
        VmRunResult? result = null;
        Exception? failure = null;
        var worker = new Thread(() =>
        {
            try { result = vm.Run(); }
            catch (Exception exception) { failure = exception; }
        }) { IsBackground = true, Name = "vcpu0" };
        AnsiConsole.Live(Render(vm, name)).AutoClear(true).Start(live =>
        {
            worker.Start();
            while (!worker.Join(200))
            {
                live.UpdateTarget(Render(vm, name));
            }
        });
        if (failure is not null)
        {
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(failure).Throw();
        }

        return result!;
    }

    /// <summary>
    /// Runs the VMs of <paramref name="machine"/> (<see cref="HostMachine.Run"/>) on a worker thread and refreshes one
    /// panel for all of them until every VM stops: a column per VM and one for the host, and each VM's console tail.
    /// </summary>
    /// <param name="machine">The shared host.</param>
    /// <param name="vms">Its VMs, booted, in index order.</param>
    /// <param name="names">Each VM's image file name.</param>
    /// <returns>Each VM's result.</returns>
    public static IReadOnlyList<VmRunResult> Run(HostMachine machine, IReadOnlyList<Vm> vms, IReadOnlyList<string> names)
    {
        IReadOnlyList<VmRunResult>? results = null;
        Exception? failure = null;
        var worker = new Thread(() =>
        {
            try { results = machine.Run(vms); }
            catch (Exception exception) { failure = exception; }
        }) { IsBackground = true, Name = "vms" };
        AnsiConsole.Live(Render(machine, vms, names)).AutoClear(true).Start(live =>
        {
            worker.Start();
            while (!worker.Join(200))
            {
                live.UpdateTarget(Render(machine, vms, names));
            }
        });
        if (failure is not null)
        {
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(failure).Throw();
        }

        return results!;
    }

    private static Panel Render(HostMachine machine, IReadOnlyList<Vm> vms, IReadOnlyList<string> names)
    {
        var c = CultureInfo.InvariantCulture;
        var now = vms.Select(vm => vm.Progress()).ToList();
        var host = machine.Stats;
        if (vms.Count > VmColumns)
        {
            return RenderRows(now, vms, names, host);
        }

        var table = new Table().NoBorder().AddColumn("figure");
        for (var i = 0; i < vms.Count; i++)
        {
            table.AddColumn(new TableColumn(Markup.Escape($"[{i}] {names[i]}")).RightAligned());
        }

        table.AddColumn(new TableColumn("host").RightAligned());
        void Row(string figure, Func<VmRunResult, Vm, string> perVm, string total) =>
            table.AddRow([figure, .. now.Select((r, i) => Markup.Escape(perVm(r, vms[i]))), Markup.Escape(total)]);

        Row("state", (r, _) => r.Kind == Machine.VmStopKind.Running ? "running" : r.Kind.ToString(), $"{now.Count(r => r.Kind == Machine.VmStopKind.Running)} running");
        Row("instructions", (r, _) => r.Cpu.Instructions.ToString("N0", c), now.Sum(r => r.Cpu.Instructions).ToString("N0", c));
        Row("MIPS", (r, _) => r.Mips.ToString("N1", c), now.Sum(r => r.Mips).ToString("N1", c));
        Row("EPT violations", (r, _) => r.Mmu.Faults.ToString("N0", c), now.Sum(r => r.Mmu.Faults).ToString("N0", c));
        Row("sptes present / zapped", (r, _) => $"{r.Mmu.PresentSptes.ToString("N0", c)} / {r.Mmu.Zapped.ToString("N0", c)}", string.Empty);
        Row("resident pages", (_, vm) => (vm.Process is { HasExited: false } p ? p.Stats.RssPages : 0).ToString("N0", c), host.RssPages.ToString("N0", c));
        Row("host frames in use", (_, _) => string.Empty, $"{host.Memory.AllocatedFrames.ToString("N0", c)} of {host.Memory.TotalFrames.ToString("N0", c)}");
        if (now[^1].HostMemory is { } memory)
        {
            Row("pages on swap", (r, _) => (r.HostMemory?.SwappedPages ?? 0).ToString("N0", c), now.Sum(r => r.HostMemory?.SwappedPages ?? 0).ToString("N0", c));
            Row("pswpout / pswpin", (_, _) => string.Empty, $"{memory.Reclaim.Pswpout.ToString("N0", c)} / {memory.Reclaim.Pswpin.ToString("N0", c)}");
        }

        if (now[0].Ksm is not null)
        {
            var ksm = machine.Host.Ksm.Stats;
            Row("ksm_merging_pages", (r, _) => (r.Ksm?.Process.MergingPages ?? 0).ToString("N0", c), $"sharing {ksm.PagesSharing.ToString("N0", c)}");
            Row("general_profit / cow_ksm", (_, _) => string.Empty, $"{(ksm.GeneralProfit >> 20).ToString("N0", c)} MiB / {machine.Host.Stats.CowKsm.ToString("N0", c)}");
        }

        var grid = new Grid().AddColumn();
        grid.AddRow(table);
        var tailLines = Math.Max(2, ConsoleLines / vms.Count);
        var tails = new Grid();
        foreach (var _ in vms)
        {
            tails.AddColumn();
        }

        tails.AddRow([.. vms.Select((vm, i) => (Spectre.Console.Rendering.IRenderable)new Panel(new Text(Tail(vm.Console.Transcript(), tailLines))).Header($"[[{i}]] console").Expand())]);
        grid.AddRow(tails);
        return new Panel(grid).Header(Markup.Escape($"hv run: {vms.Count} VMs on one host")).Expand();
    }

    // More VMs than fit side by side: a row per VM (its figures, its resident pages and its console's last line) and a
    // row for the host, narrow enough for 80 columns.
    private static Panel RenderRows(List<VmRunResult> now, IReadOnlyList<Vm> vms, IReadOnlyList<string> names, HostMm.HostStats host)
    {
        var c = CultureInfo.InvariantCulture;
        var table = new Table().NoBorder()
            .AddColumn("VM").AddColumn("state")
            .AddColumn(new TableColumn("instructions").RightAligned()).AddColumn(new TableColumn("MIPS").RightAligned())
            .AddColumn(new TableColumn("RSS").RightAligned())
            .AddColumn("console");

        // One line per VM on a terminal of any width: long texts are cut, not wrapped.
        static Text Cell(string text, int width = 11) => new(text.Length <= width ? text : string.Concat(text.AsSpan(0, width - 1), "…"));
        for (var i = 0; i < vms.Count; i++)
        {
            var r = now[i];
            var rss = vms[i].Process is { HasExited: false } p ? p.Stats.RssPages : 0;
            table.AddRow(
                Cell($"[{i}] {names[i]}"),
                Cell(r.Kind == Machine.VmStopKind.Running ? "running" : r.Kind.ToString()),
                Cell(r.Cpu.Instructions.ToString("N0", c)),
                Cell(r.Mips.ToString("N1", c)),
                Cell(rss.ToString("N0", c)),
                Cell(Tail(vms[i].Console.Transcript().TrimEnd('\n'), 1), 22));
        }

        table.AddRow(
            Cell("host"),
            Cell($"{now.Count(r => r.Kind == Machine.VmStopKind.Running)} running"),
            Cell(now.Sum(r => r.Cpu.Instructions).ToString("N0", c)),
            Cell(now.Sum(r => r.Mips).ToString("N1", c)),
            Cell(host.RssPages.ToString("N0", c)),
            Cell($"{host.Memory.AllocatedFrames.ToString("N0", c)} of {host.Memory.TotalFrames.ToString("N0", c)} frames", 22));
        return new Panel(table).Header(Markup.Escape($"hv run: {vms.Count} VMs on one host")).Expand();
    }

    private static string Tail(string transcript, int count)
    {
        var lines = transcript.Split('\n');
        return string.Join('\n', lines.Skip(Math.Max(0, lines.Length - count)));
    }

    private static Panel Render(Vm vm, string name)
    {
        var c = CultureInfo.InvariantCulture;
        var now = vm.Progress();
        var table = new Table().NoBorder().HideHeaders().AddColumn("figure").AddColumn(new TableColumn("value").RightAligned());
        table.AddRow("instructions", now.Cpu.Instructions.ToString("N0", c));
        table.AddRow("MIPS", now.Mips.ToString("N1", c));
        table.AddRow("EPT violations", now.Mmu.Faults.ToString("N0", c));
        table.AddRow("sptes present / zapped", $"{now.Mmu.PresentSptes.ToString("N0", c)} / {now.Mmu.Zapped.ToString("N0", c)}");
        table.AddRow("TLB hit rate", (now.TlbHitRate * 100).ToString("0.00", c) + " %");
        table.AddRow("decode-cache hit rate", (now.Cpu.DecodeCacheHitRate * 100).ToString("0.00", c) + " %");
        if (now.HostMemory is { } host)
        {
            var r = host.Reclaim;
            table.AddRow("resident / swapped pages", $"{host.ResidentPages.ToString("N0", c)} / {host.SwappedPages.ToString("N0", c)}");
            table.AddRow("pswpout / pswpin", $"{r.Pswpout.ToString("N0", c)} / {r.Pswpin.ToString("N0", c)}");
            table.AddRow("pgscan / pgsteal", $"{r.Pgscan.ToString("N0", c)} / {r.Pgsteal.ToString("N0", c)}");
            table.AddRow("pgactivate / workingset_refault_anon", $"{r.Pgactivate.ToString("N0", c)} / {r.WorkingsetRefaultAnon.ToString("N0", c)}");
            table.AddRow("swap-cache hits / readahead hits", $"{r.SwapCacheHits.ToString("N0", c)} / {r.SwapRaHit.ToString("N0", c)}");
            table.AddRow("secondary young hits / queries", $"{r.SecondaryYoungHits.ToString("N0", c)} / {r.SecondaryYoungQueries.ToString("N0", c)}");
            table.AddRow("allocstall", r.Allocstall.ToString("N0", c));
            table.AddRow(
                "swap device",
                Markup.Escape(host.ZramCompressionRatio is { } ratio ? $"{host.SwapDevice} ({ratio.ToString("0.00", c)}:1)" : host.SwapDevice));
        }

        if (vm.Options.NumaNodes is not null && vm.GuestMemory is { } ram)
        {
            var migration = ram.Process.Host.Migration.Stats;
            table.AddRow("guest pages per node", Markup.Escape(RunReport.PerNode(ram.ResidentPagesPerNode())));
            table.AddRow("pgmigrate_success / fail", $"{migration.PgmigrateSuccess.ToString("N0", c)} / {migration.PgmigrateFail.ToString("N0", c)}");
            table.AddRow("migration-entry waits (gup)", $"{ram.Process.MigrationEntryWaits.ToString("N0", c)} ({ram.Process.GupMigrationEntryWaits.ToString("N0", c)})");
        }

        if (vm.Options.TransparentHugePages != HostMm.ThpMode.Never && vm.Process is { } process)
        {
            // HugeLeaves reads the PD entries with volatile loads from the host's frame arena, which stays mapped while
            // the process lives: a fault racing the panel skews AnonHugePages by a leaf, never more.
            var thp = process.ThpStats;
            table.AddRow("thp_fault_alloc / fallback / split_pmd", $"{thp.ThpFaultAlloc.ToString("N0", c)} / {thp.ThpFaultFallback.ToString("N0", c)} / {thp.ThpSplitPmd.ToString("N0", c)}");
            table.AddRow("AnonHugePages", $"{(thp.HugeLeaves * 2048).ToString("N0", c)} kB");
            table.AddRow("pages_2m / pages_4k (EPT tables)", $"{now.Mmu.Pages2M.ToString("N0", c)} / {now.Mmu.Pages4K.ToString("N0", c)} ({now.Mmu.TablePages.ToString("N0", c)})");
        }

        if (now.Ksm is { } ksm)
        {
            table.AddRow("ksm_merging_pages / pages_sharing", $"{ksm.Process.MergingPages.ToString("N0", c)} / {ksm.Host.PagesSharing.ToString("N0", c)}");
            table.AddRow("general_profit / cow_ksm", $"{(ksm.Host.GeneralProfit >> 20).ToString("N0", c)} MiB / {ksm.CowKsm.ToString("N0", c)}");
        }

        var lines = vm.Console.Transcript().Split('\n');
        var tail = string.Join('\n', lines.Skip(Math.Max(0, lines.Length - ConsoleLines)));
        var grid = new Grid().AddColumn();
        grid.AddRow(table);
        grid.AddRow(new Panel(new Text(tail)).Header("guest console").Expand());
        return new Panel(grid).Header($"hv run {Markup.Escape(name)}").Expand();
    }
}
