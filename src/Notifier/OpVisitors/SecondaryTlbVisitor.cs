namespace Hypervisor.Notifier.OpVisitors;

/// <summary>arch_invalidate_secondary_tlbs on every subscriber that implements it.</summary>
internal readonly struct SecondaryTlbVisitor : ISubscriberVisitor
{
    private readonly IMm _mm;
    private readonly Hva _start;
    private readonly Hva _end;

    /// <summary>Creates the visitor for <c>[start, end)</c> of <paramref name="mm"/>.</summary>
    public SecondaryTlbVisitor(IMm mm, Hva start, Hva end)
    {
        _mm = mm;
        _start = start;
        _end = end;
    }

    /// <inheritdoc />
    public static MmuNotifierOps Op => MmuNotifierOps.InvalidateSecondaryTlbs;

    /// <inheritdoc />
    public bool Visit(MmuNotifierSubscription subscription, int index)
    {
        subscription.Notifier.InvalidateSecondaryTlbs(_mm, _start, _end);
        return true;
    }
}
