using System.Globalization;

namespace Hypervisor.Vmm.Demo.Stress;

/// <summary>Reclaim with swap: the host's kswapd (and the vCPUs' direct reclaim) under the VM's memory cgroup limit.</summary>
internal sealed class ReclaimMechanism(StressContext context, string device) : StressMechanism
{
    public override StressMechanismKind Kind => StressMechanismKind.Reclaim;

    public override string Name => $"reclaim + swap ({device})";

    public override string OperationName => "kswapd steps";

    public override string EffectName => "pages swapped out";

    public override long Operations => context.Vm.ReclaimDaemon?.Steps ?? 0;

    public override long Effect => context.Host.Reclaim.Stats.Pswpout;

    public override string Detail
    {
        get
        {
            var stats = context.Host.Reclaim.Stats;
            return string.Create(CultureInfo.InvariantCulture, $"{stats.Pswpin:N0} swapped in, {stats.PgstealDirect:N0} by direct reclaim, {stats.WorkingsetRefaultAnon:N0} refaults");
        }
    }

    protected override void Execute(in StressOperation operation, CancellationToken stop) =>
        throw new InvalidOperationException("reclaim runs on the host's kswapd, not on a schedule");
}
