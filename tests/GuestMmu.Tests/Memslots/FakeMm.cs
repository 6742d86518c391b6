using Hypervisor.Notifier;

namespace Hypervisor.GuestMmu.Tests.Memslots;

/// <summary>A bare host process for memslot tests: an id and a notifier chain, nothing else.</summary>
public sealed class FakeMm : IMm
{
    private static int s_nextId = 1000;

    public FakeMm() => Notifiers = new MmuNotifierChain(this);

    public int Id { get; } = Interlocked.Increment(ref s_nextId);

    public MmuNotifierChain Notifiers { get; }
}
