using System.Globalization;
using Hypervisor.Vmm.Demo.Swap;
using Spectre.Console;

namespace Hypervisor.Vmm.Cli;

/// <summary>The live view of <c>hv demo swap</c> on a terminal: the stage, the running VM's reclaim and swap counters and its console tail.</summary>
internal static class SwapDemoLiveView
{
    private const int ConsoleLines = 6;

    /// <summary>Runs <paramref name="demo"/> on a worker thread and refreshes the view until it ends.</summary>
    public static SwapDemoResult Run(SwapDemo demo) => DemoWorker.RunLive(demo.Run, () => Render(demo), "swap-demo");

    private static Panel Render(SwapDemo demo)
    {
        var c = CultureInfo.InvariantCulture;
        var grid = new Grid().AddColumn();
        grid.AddRow(new Text(demo.Stage));
        if (demo.Current is { Host: { } host, Process: { } process } vm)
        {
            var r = host.Reclaim.Stats;
            var mm = process.Stats;
            var table = new Table().NoBorder().HideHeaders().AddColumn("figure").AddColumn(new TableColumn("value").RightAligned());
            table.AddRow("guest instructions", vm.Progress().Cpu.Instructions.ToString("N0", c));
            table.AddRow("resident / swapped pages", $"{mm.RssPages.ToString("N0", c)} / {mm.SwapEntries.ToString("N0", c)}");
            table.AddRow("pswpout / pswpin", $"{r.Pswpout.ToString("N0", c)} / {r.Pswpin.ToString("N0", c)}");
            table.AddRow("pgscan / pgsteal", $"{r.Pgscan.ToString("N0", c)} / {r.Pgsteal.ToString("N0", c)}");
            table.AddRow("workingset_refault_anon", r.WorkingsetRefaultAnon.ToString("N0", c));
            table.AddRow("secondary-young answers", $"{r.SecondaryYoungHits.ToString("N0", c)} / {r.SecondaryYoungQueries.ToString("N0", c)}");
            grid.AddRow(table);
            var lines = vm.Console.Transcript().Split('\n');
            grid.AddRow(new Panel(new Text(string.Join('\n', lines.Skip(Math.Max(0, lines.Length - ConsoleLines))))).Header("guest console").Expand());
        }

        return new Panel(grid).Header("hv demo swap").Expand();
    }
}
