namespace Hypervisor.Notifier.OpVisitors;

/// <summary>clear_young on every subscriber that implements it; the answers are OR'ed.</summary>
internal struct ClearYoungVisitor : ISubscriberVisitor
{
    private readonly IMm _mm;
    private readonly Hva _start;
    private readonly Hva _end;

    /// <summary>Creates the visitor for <c>[start, end)</c> of <paramref name="mm"/>.</summary>
    public ClearYoungVisitor(IMm mm, Hva start, Hva end)
    {
        _mm = mm;
        _start = start;
        _end = end;
        Young = false;
    }

    /// <inheritdoc />
    public static MmuNotifierOps Op => MmuNotifierOps.ClearYoung;

    /// <summary>True once any subscriber answered young.</summary>
    public bool Young { readonly get; private set; }

    /// <inheritdoc />
    public bool Visit(MmuNotifierSubscription subscription, int index)
    {
        Young |= subscription.Notifier.ClearYoung(_mm, _start, _end);
        return true;
    }
}
