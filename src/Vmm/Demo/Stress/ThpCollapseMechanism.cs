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
            return string.Create(CultureInfo.InvariantCulture, $"{stats.RangesScanned:N0} ranges scanned, {stats.FullScans:N0} full scans, {stats.CollapseAllocFailed:N0} allocations failed");
        }
    }

    protected override void Execute(in StressOperation operation, CancellationToken stop) => AddEffect(context.Host.Khugepaged.Step(operation.Pages));
}
