using Hypervisor.Notifier;

namespace Hypervisor.Vmm.Tests.Support;

/// <summary>An mm with an id and a notifier chain and no memory, for tests of the chain's errors through the CLI.</summary>
public sealed class StubMm : IMm
{
    public StubMm(int id)
    {
        Id = id;
        Notifiers = new MmuNotifierChain(this);
    }

    public int Id { get; }

    public MmuNotifierChain Notifiers { get; }

    public override string ToString() => $"stub mm {Id}";
}
