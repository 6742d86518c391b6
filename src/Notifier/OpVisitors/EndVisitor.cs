namespace Hypervisor.Notifier.OpVisitors;

/// <summary>
/// invalidate_range_end over the list the start used: every subscriber that saw the start and is still
/// listed (one unlisted meanwhile by exit or put gets no end, as it gets no further callbacks).
/// </summary>
internal ref struct EndVisitor : ISubscriberVisitor
{
    private readonly ref readonly NotifierRange _range;

    /// <summary>Creates the visitor for <paramref name="range"/>.</summary>
    public EndVisitor(ref readonly NotifierRange range) => _range = ref range;

    /// <inheritdoc />
    public static MmuNotifierOps Op => MmuNotifierOps.InvalidateRangeEnd;

    /// <inheritdoc />
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public readonly bool Visit(MmuNotifierSubscription subscription, int index)
    {
        if (subscription.IsListed)
        {
            subscription.Notifier.InvalidateRangeEnd(in _range);
        }

        return true;
    }
}
