namespace Hypervisor.Notifier.OpVisitors;

/// <summary>The historical change_pte on every subscriber that implements it.</summary>
internal readonly struct ChangePteVisitor : ISubscriberVisitor
{
    private readonly IMm _mm;
    private readonly Hva _address;
    private readonly HostPte _pte;

    /// <summary>Creates the visitor for the new <paramref name="pte"/> at <paramref name="address"/> of <paramref name="mm"/>.</summary>
    public ChangePteVisitor(IMm mm, Hva address, HostPte pte)
    {
        _mm = mm;
        _address = address;
        _pte = pte;
    }

    /// <inheritdoc />
    public static MmuNotifierOps Op => MmuNotifierOps.ChangePte;

    /// <inheritdoc />
    public bool Visit(MmuNotifierSubscription subscription, int index)
    {
        subscription.Notifier.ChangePte(_mm, _address, _pte);
        return true;
    }
}
