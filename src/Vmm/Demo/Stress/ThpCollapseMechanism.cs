using System.Globalization;

namespace Hypervisor.Vmm.Demo.Stress;

/// <summary>khugepaged: scan steps that collapse fully resident, referenced 2 MiB ranges back into huge pages.</summary>
internal sealed class ThpCollapseMechanism(StressContext context) : StressMechanism
{
    public override StressMechanismKind Kind => StressMechanismKind.ThpCollapse;

    public override string Name => "THP collapse (khugepaged)";

    public override string OperationName => "scan steps";

    public override string EffectName => "ranges collapsed";

    public override string Detail
    {
        get
        {
            var stats = context.Host.Khugepaged.Stats;
            var skipped = string.Join(", ", stats.Skipped.Where(s => s.Value > 0).OrderByDescending(s => s.Value).Select(s => string.Create(CultureInfo.InvariantCulture, $"{s.Key} {s.Value:N0}")));
            return string.Create(CultureInfo.InvariantCulture, $"{stats.RangesScanned:N0} ranges scanned in {stats.FullScans:N0} full scans; skipped: {(skipped.Length > 0 ? skipped : "none")}");
        }
    }

    protected override void Execute(in StressOperation operation, CancellationToken stop) => AddEffect(context.Host.Khugepaged.Step(operation.Pages));
}
