using System.Globalization;
using Hypervisor.Vmm.Demo.Stress;
using Spectre.Console;

namespace Hypervisor.Vmm.Cli;

/// <summary>The live view of <c>hv demo stress</c> on a terminal: the stage, each mechanism's counters, the MMU's, the guest's and the audits'.</summary>
internal static class StressDemoLiveView
{
    /// <summary>Runs <paramref name="demo"/> on a worker thread and refreshes the view until it ends.</summary>
    public static StressDemoResult Run(StressDemo demo) => DemoWorker.RunLive(demo.Run, () => Render(demo), "stress-demo");

    private static Panel Render(StressDemo demo)
    {
        var c = CultureInfo.InvariantCulture;
        var grid = new Grid().AddColumn();
        grid.AddRow(new Text(demo.Stage));
        var mechanisms = new Table().NoBorder()
            .AddColumn("mechanism")
            .AddColumn(new TableColumn("operations").RightAligned())
            .AddColumn(new TableColumn("/s").RightAligned())
            .AddColumn(new TableColumn("effect").RightAligned())
            .AddColumn("of");
        foreach (var m in demo.Mechanisms())
        {
            mechanisms.AddRow(
                new Text(m.Name),
                new Text(m.Operations.ToString("N0", c)),
                new Text(m.OperationsPerSecond.ToString("N1", c)),
                new Text(m.Effect.ToString("N0", c), m.Effect > 0 ? Style.Plain : new Style(Color.Yellow)),
                new Text(m.EffectName));
        }

        grid.AddRow(mechanisms);
        var figures = new Table().NoBorder().HideHeaders().AddColumn("figure").AddColumn(new TableColumn("value").RightAligned());
        if (demo.Vm is { Mmu: { } mmu, Shootdown: { } shootdown })
        {
            var stats = mmu.Stats;
            figures.AddRow("EPT violations / sptes zapped", $"{stats.Faults.ToString("N0", c)} / {stats.Zapped.ToString("N0", c)}");
            figures.AddRow("fault retries / invalidation waits", $"{stats.Retries.ToString("N0", c)} / {stats.InvalidationWaits.ToString("N0", c)}");
            figures.AddRow("TLB shootdowns (longest wait)", $"{shootdown.Flushes.ToString("N0", c)} ({shootdown.MaxWait.TotalMilliseconds.ToString("N2", c)} ms)");
        }

        var (passes, verified, corrupted, discarded) = demo.Guest();
        figures.AddRow("guest passes / pages verified", $"{passes.ToString("N0", c)} / {verified.ToString("N0", c)}");
        figures.AddRow("corrupted / discarded pages", $"{corrupted.ToString("N0", c)} / {discarded.ToString("N0", c)}");
        if (demo.Vm?.Dma?.Counters is { } dma)
        {
            figures.AddRow("DMA copies / hit rate / stale", $"{dma.Copies.ToString("N0", c)} / {dma.HitRate.ToString("P1", c)} / {dma.StaleDmas.ToString("N0", c)}");
        }

        var (audits, violations) = demo.Audits();
        figures.AddRow("audit passes / violations", $"{audits.ToString("N0", c)} / {violations.ToString("N0", c)}");
        grid.AddRow(figures);
        return new Panel(grid).Header(string.Create(c, $"hv demo stress (seed {demo.Options.Seed})")).Expand();
    }
}
