namespace Hypervisor.Notifier.OpVisitors;

/// <summary>
/// Exit's release pass: claims the single release of every listed subscriber (whether or not it implements
/// the op) and calls the op on those that do, while they are still listed.
/// </summary>
internal readonly struct ReleaseVisitor : ISubscriberVisitor
{
    private readonly MmuNotifierChain _chain;

    /// <summary>Creates the visitor for <paramref name="chain"/>, whose claim and counters it uses.</summary>
    public ReleaseVisitor(MmuNotifierChain chain) => _chain = chain;

    /// <inheritdoc />
    public static MmuNotifierOps Op => MmuNotifierOps.None;

    /// <inheritdoc />
    public bool Visit(MmuNotifierSubscription subscription, int index)
    {
        _chain.ReleaseOnce(subscription);
        return true;
    }
}
