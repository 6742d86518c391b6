using System.Globalization;
using Hypervisor.Vmm.Machine;
using Spectre.Console;

namespace Hypervisor.Vmm.Cli;

/// <summary>The live Spectre.Console panel of <c>hv run</c> on a terminal: counters and the console tail, refreshed while the guest runs.</summary>
internal static class LivePanel
{
    private const int ConsoleLines = 8;

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
        var lines = vm.Console.Transcript().Split('\n');
        var tail = string.Join('\n', lines.Skip(Math.Max(0, lines.Length - ConsoleLines)));
        var grid = new Grid().AddColumn();
        grid.AddRow(table);
        grid.AddRow(new Panel(new Text(tail)).Header("guest console").Expand());
        return new Panel(grid).Header($"hv run {Markup.Escape(name)}").Expand();
    }
}
