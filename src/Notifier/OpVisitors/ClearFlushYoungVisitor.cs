namespace Hypervisor.Notifier.OpVisitors;

/// <summary>clear_flush_young on every subscriber that implements it; the answers are OR'ed.</summary>
internal struct ClearFlushYoungVisitor : ISubscriberVisitor
{
    private readonly IMm _mm;
    private readonly Hva _start;
    private readonly Hva _end;

    /// <summary>Creates the visitor for <c>[start, end)</c> of <paramref name="mm"/>.</summary>
    public ClearFlushYoungVisitor(IMm mm, Hva start, Hva end)
    {
        _mm = mm;
        _start = start;
        _end = end;
        Young = false;
    }

    /// <inheritdoc />
    public static MmuNotifierOps Op => MmuNotifierOps.ClearFlushYoung;

    /// <summary>True once any subscriber answered young.</summary>
    public bool Young { readonly get; private set; }

    /// <inheritdoc />
    public bool Visit(MmuNotifierSubscription subscription, int index)
    {
        Young |= subscription.Notifier.ClearFlushYoung(_mm, _start, _end);
        return true;
    }
}
