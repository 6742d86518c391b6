using System.Globalization;

namespace Hypervisor.Vmm.Demo.Stress;

/// <summary>
/// NUMA balancing: scans that make the guest's resident pages PROT_NONE (zapping their sptes); each vCPU runs on node
/// (its id mod 2), so its hinting faults pull the pages the migration mechanism moved away back to its node.
/// </summary>
internal sealed class NumaBalancingMechanism : StressMechanism
{
    private readonly StressContext _context;

    public NumaBalancingMechanism(StressContext context)
    {
        _context = context;
        context.Host.NumaBalancing.Enabled = true;
    }

    public override StressMechanismKind Kind => StressMechanismKind.NumaBalancing;

    public override string Name => "NUMA balancing";

    public override string OperationName => "scan steps";

    public override string EffectName => "hinting faults";

    public override long Effect => _context.Host.NumaBalancing.Stats.NumaHintFaults;

    public override string Detail
    {
        get
        {
            var stats = _context.Host.NumaBalancing.Stats;
            return string.Create(CultureInfo.InvariantCulture, $"{stats.NumaPteUpdates:N0} PTEs made PROT_NONE; {stats.NumaHintFaultsLocal:N0} of the faults local, {stats.NumaPagesMigrated:N0} pages migrated to the faulting vCPU's node");
        }
    }

    protected override void Execute(in StressOperation operation, CancellationToken stop) => _context.Host.NumaBalancing.Step(operation.Pages);
}
