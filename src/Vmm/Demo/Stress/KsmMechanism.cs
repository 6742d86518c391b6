using System.Globalization;

namespace Hypervisor.Vmm.Demo.Stress;

/// <summary>The host's KSM scanner (ksmd) merging the guest's equal pages; the guest's rewrites break them copy-on-write.</summary>
internal sealed class KsmMechanism(StressContext context) : StressMechanism
{
    public override StressMechanismKind Kind => StressMechanismKind.Ksm;

    public override string Name => "KSM (ksmd)";

    public override string OperationName => "ksmd batches";

    public override string EffectName => "pages merged";

    public override long Operations => context.Vm.Machine?.KsmDaemon?.Steps ?? 0;

    public override long Effect => context.Host.Ksm.Stats.Merges;

    public override string Detail
    {
        get
        {
            var ksm = context.Host.Ksm.Stats;
            return string.Create(CultureInfo.InvariantCulture, $"{context.Host.Stats.CowKsm:N0} copy-on-write breaks, {ksm.PagesSharing:N0} sharing now, {ksm.FullScans:N0} full scans");
        }
    }

    protected override void Execute(in StressOperation operation, CancellationToken stop) =>
        throw new InvalidOperationException("KSM runs on the host's ksmd, not on a schedule");
}
