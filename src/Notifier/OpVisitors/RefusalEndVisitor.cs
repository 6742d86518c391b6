namespace Hypervisor.Notifier.OpVisitors;

/// <summary>
/// After a refused start: invalidate_range_end on every subscriber that accepted it (and implements end), so
/// no subscriber is left with a start whose end will never come. The refusers get nothing.
/// </summary>
internal ref struct RefusalEndVisitor : ISubscriberVisitor
{
    private readonly ref readonly NotifierRange _range;
    private readonly bool[] _refused;

    /// <summary>Creates the visitor for <paramref name="range"/> and the refusals <see cref="StartVisitor"/> recorded.</summary>
    public RefusalEndVisitor(ref readonly NotifierRange range, bool[] refused)
    {
        _range = ref range;
        _refused = refused;
    }

    /// <inheritdoc />
    public static MmuNotifierOps Op => MmuNotifierOps.InvalidateRangeEnd;

    /// <inheritdoc />
    public readonly bool Visit(MmuNotifierSubscription subscription, int index)
    {
        if (!_refused[index])
        {
            subscription.Notifier.InvalidateRangeEnd(in _range);
        }

        return true;
    }
}
