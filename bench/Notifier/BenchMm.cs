using Hypervisor.Notifier;

namespace Hypervisor.Bench.Notifier;

/// <summary>A bare mm for notifier benchmarks.</summary>
internal sealed class BenchMm : IMm
{
    public BenchMm() => Notifiers = new MmuNotifierChain(this);

    public int Id => 1;

    public MmuNotifierChain Notifiers { get; }
}
