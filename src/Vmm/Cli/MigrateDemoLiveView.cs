using System.Globalization;
using Hypervisor.Vmm.Demo.Migrate;
using Spectre.Console;

namespace Hypervisor.Vmm.Cli;

/// <summary>The live view of <c>hv demo migrate</c> on a terminal: the stage, guest pages per node, the migration and balancing counters, the console's tail.</summary>
internal static class MigrateDemoLiveView
{
    private const int ConsoleLines = 6;

    /// <summary>Runs <paramref name="demo"/> on a worker thread and refreshes the view until it ends.</summary>
    public static MigrateDemoResult Run(MigrateDemo demo) => DemoWorker.RunLive(demo.Run, () => Render(demo), "migrate-demo");

    private static Panel Render(MigrateDemo demo)
    {
        var c = CultureInfo.InvariantCulture;
        var grid = new Grid().AddColumn();
        grid.AddRow(new Text(demo.Stage));
        if (demo.Vm is { GuestMemory: { } ram, Mmu: { } mmu } vm && vm.Process is { HasExited: false } process)
        {
            var host = process.Host;
            var m = host.Migration.Stats;
            var b = host.NumaBalancing.Stats;
            var e = mmu.Stats;
            var table = new Table().NoBorder().HideHeaders().AddColumn("figure").AddColumn(new TableColumn("value").RightAligned());
            table.AddRow("guest pages per node", Markup.Escape(PerNode(ram)));
            table.AddRow("trips done", demo.TripsDone.ToString("N0", c));
            table.AddRow("pgmigrate_success / fail", $"{m.PgmigrateSuccess.ToString("N0", c)} / {m.PgmigrateFail.ToString("N0", c)}");
            table.AddRow("migration-entry waits (in EPT faults)", $"{process.MigrationEntryWaits.ToString("N0", c)} ({process.GupMigrationEntryWaits.ToString("N0", c)})");
            table.AddRow("numa_pte_updates / numa_hint_faults", $"{b.NumaPteUpdates.ToString("N0", c)} / {b.NumaHintFaults.ToString("N0", c)}");
            table.AddRow("numa_pages_migrated", b.NumaPagesMigrated.ToString("N0", c));
            table.AddRow("EPT violations / sptes zapped", $"{e.Faults.ToString("N0", c)} / {e.Zapped.ToString("N0", c)}");
            table.AddRow("audits", demo.Audits.ToString("N0", c));
            grid.AddRow(table);
            var lines = vm.Console.Transcript().TrimEnd('\n').Split('\n');
            grid.AddRow(new Panel(new Text(string.Join('\n', lines.Skip(Math.Max(0, lines.Length - ConsoleLines))))).Header("guest console").Expand());
        }

        return new Panel(grid).Header("hv demo migrate").Expand();
    }

    // The demo's VM exits as the demo ends, perhaps between the check above and the walk.
    private static string PerNode(Machine.GuestRam ram)
    {
        try
        {
            return RunReport.PerNode(ram.ResidentPagesPerNode());
        }
        catch (Hypervisor.Notifier.MmExitedException)
        {
            return "(exited)";
        }
    }
}
