namespace Hypervisor.Notifier.OpVisitors;

/// <summary>
/// clear_flush_young answering per page on every subscriber that implements <c>ClearFlushYoung</c> or
/// <c>ClearFlushYoungBitmap</c>; the answers are OR'ed into one bitmap (a subscriber with only <c>ClearFlushYoung</c> is
/// asked page by page).
/// </summary>
internal struct ClearFlushYoungBitmapVisitor : ISubscriberVisitor
{
    private readonly IMm _mm;
    private readonly Hva _start;
    private readonly Hva _end;
    private readonly ulong[] _young;

    /// <summary>Creates the visitor for <c>[start, end)</c> of <paramref name="mm"/>, OR-ing answers into <paramref name="young"/>.</summary>
    public ClearFlushYoungBitmapVisitor(IMm mm, Hva start, Hva end, ulong[] young)
    {
        _mm = mm;
        _start = start;
        _end = end;
        _young = young;
    }

    /// <inheritdoc />
    public static MmuNotifierOps Op => MmuNotifierOps.ClearFlushYoung | MmuNotifierOps.ClearFlushYoungBitmap;

    /// <inheritdoc />
    public bool Visit(MmuNotifierSubscription subscription, int index)
    {
        subscription.Notifier.ClearFlushYoungBitmap(_mm, _start, _end, _young);
        return true;
    }
}
