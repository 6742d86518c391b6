namespace Hypervisor.Notifier.Tests.Support;

/// <summary>A bare mm for notifier tests: an id and a chain, nothing else.</summary>
public sealed class TestMm : IMm
{
    private static int s_nextId;

    public TestMm() => Notifiers = new MmuNotifierChain(this);

    public TestMm(NotifierEra era) => Notifiers = new MmuNotifierChain(this, era);

    public int Id { get; } = Interlocked.Increment(ref s_nextId);

    public MmuNotifierChain Notifiers { get; }
}
