using System.Globalization;
using Hypervisor.Vmm.Demo.Thp;
using Spectre.Console;

namespace Hypervisor.Vmm.Cli;

/// <summary>The live view of <c>hv demo thp</c> on a terminal: the stage, the THP and EPT counters of the run in progress, the console's tail.</summary>
internal static class ThpDemoLiveView
{
    private const int ConsoleLines = 6;

    /// <summary>Runs <paramref name="demo"/> on a worker thread and refreshes the view until it ends.</summary>
    public static ThpDemoResult Run(ThpDemo demo) => DemoWorker.RunLive(demo.Run, () => Render(demo), "thp-demo");

    private static Panel Render(ThpDemo demo)
    {
        var c = CultureInfo.InvariantCulture;
        var grid = new Grid().AddColumn();
        grid.AddRow(new Text(demo.Stage));
        if (demo.Vm is { Mmu: { } mmu } vm && vm.Process is { HasExited: false } process)
        {
            var e = mmu.Stats;
            var thp = process.ThpStats;
            var k = process.Host.Khugepaged.Stats;
            var table = new Table().NoBorder().HideHeaders().AddColumn("figure").AddColumn(new TableColumn("value").RightAligned());
            table.AddRow("EPT violations / sptes zapped", $"{e.Faults.ToString("N0", c)} / {e.Zapped.ToString("N0", c)}");
            table.AddRow("pages_2m / pages_4k (EPT tables)", $"{e.Pages2M.ToString("N0", c)} / {e.Pages4K.ToString("N0", c)} ({e.TablePages.ToString("N0", c)})");
            table.AddRow("thp_fault_alloc / thp_split_pmd", $"{thp.ThpFaultAlloc.ToString("N0", c)} / {thp.ThpSplitPmd.ToString("N0", c)}");
            table.AddRow("AnonHugePages", $"{(thp.HugeLeaves * 2048).ToString("N0", c)} kB");
            table.AddRow("thp_collapse_alloc", k.PagesCollapsed.ToString("N0", c));
            table.AddRow("audits", demo.Audits.ToString("N0", c));
            grid.AddRow(table);
            var lines = vm.Console.Transcript().TrimEnd('\n').Split('\n');
            grid.AddRow(new Panel(new Text(string.Join('\n', lines.Skip(Math.Max(0, lines.Length - ConsoleLines))))).Header("guest console").Expand());
        }

        return new Panel(grid).Header("hv demo thp").Expand();
    }
}
