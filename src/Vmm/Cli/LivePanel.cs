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
        var lines = vm.Console.Transcript().Split('\n');
        var tail = string.Join('\n', lines.Skip(Math.Max(0, lines.Length - ConsoleLines)));
        var grid = new Grid().AddColumn();
        grid.AddRow(table);
        grid.AddRow(new Panel(new Text(tail)).Header("guest console").Expand());
        return new Panel(grid).Header($"hv run {Markup.Escape(name)}").Expand();
    }
}
