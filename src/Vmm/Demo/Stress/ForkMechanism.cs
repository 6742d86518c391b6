using HostProcess = Hypervisor.HostMm.Mm;

namespace Hypervisor.Vmm.Demo.Stress;

/// <summary>
/// Fork snapshots (as <see cref="Machine.HostForkScenario"/>, on the schedule): the VM's process is forked — guest RAM
/// write-protected copy-on-write inside a notifier start/end, so the EPT zaps and the guest's next writes break COW —
/// the child is held for a while, then exits.
/// </summary>
internal sealed class ForkMechanism(StressContext context) : StressMechanism
{
    private HostProcess? _child;

    public override StressMechanismKind Kind => StressMechanismKind.Fork;

    public override string Name => "fork snapshots";

    public override string OperationName => "forks";

    public override string EffectName => "snapshots exited";

    protected override void Execute(in StressOperation operation, CancellationToken stop) => _child = context.Process.Fork();

    protected override void EndHold(in StressOperation operation)
    {
        _child?.Exit();
        _child = null;
        AddEffect(1);
    }
}
