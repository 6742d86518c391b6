using System.Globalization;
using Hypervisor.Vmm.Demo.Ksm;
using Spectre.Console;

namespace Hypervisor.Vmm.Cli;

/// <summary>The live view of <c>hv demo ksm</c> on a terminal: the stage, the scanner's counters, each VM's merged pages and console line.</summary>
internal static class KsmDemoLiveView
{
    /// <summary>Runs <paramref name="demo"/> on a worker thread and refreshes the view until it ends.</summary>
    public static KsmDemoResult Run(KsmDemo demo) => DemoWorker.RunLive(demo.Run, () => Render(demo), "ksm-demo");

    private static Panel Render(KsmDemo demo)
    {
        var c = CultureInfo.InvariantCulture;
        var grid = new Grid().AddColumn();
        grid.AddRow(new Text(demo.Stage));
        if (demo.Machine is { } machine)
        {
            var k = machine.Host.Ksm.Stats;
            var host = machine.Host.Stats;
            var table = new Table().NoBorder().HideHeaders().AddColumn("figure").AddColumn(new TableColumn("value").RightAligned());
            table.AddRow("host frames in use", host.Memory.AllocatedFrames.ToString("N0", c));
            table.AddRow("pages_shared / pages_sharing", $"{k.PagesShared.ToString("N0", c)} / {k.PagesSharing.ToString("N0", c)}");
            table.AddRow("pages_unshared / pages_volatile", $"{k.PagesUnshared.ToString("N0", c)} / {k.PagesVolatile.ToString("N0", c)}");
            table.AddRow("general_profit", $"{(k.GeneralProfit / (1024.0 * 1024.0)).ToString("N1", c)} MiB");
            table.AddRow("full_scans / pages scanned", $"{k.FullScans.ToString("N0", c)} / {k.PagesScanned.ToString("N0", c)}");
            table.AddRow("cow_ksm", host.CowKsm.ToString("N0", c));
            table.AddRow("audits", demo.Audits.ToString("N0", c));
            grid.AddRow(table);
            var vms = new Table().NoBorder().AddColumn("VM").AddColumn(new TableColumn("ksm_merging_pages").RightAligned()).AddColumn("console");
            foreach (var vm in demo.Vms)
            {
                var merging = vm.Process is { HasExited: false } process ? machine.Host.Ksm.ProcessStats(process).MergingPages : 0;
                var lines = vm.Console.Transcript().TrimEnd('\n').Split('\n');
                vms.AddRow(new Text($"[{vm.Index}]"), new Text(merging.ToString("N0", c)), new Text(lines[^1]));
            }

            grid.AddRow(vms);
        }

        return new Panel(grid).Header("hv demo ksm").Expand();
    }
}
