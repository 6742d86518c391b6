namespace Hypervisor.Notifier.OpVisitors;

/// <summary>
/// invalidate_range_start on every subscriber that implements it; Linux calls all of them even after one
/// refused, so the walk never stops early. Refusals are recorded by list index for <see cref="RefusalEndVisitor"/>.
/// </summary>
internal ref struct StartVisitor : ISubscriberVisitor
{
    private readonly ref readonly NotifierRange _range;
    private readonly int _length;

    /// <summary>Creates the visitor for <paramref name="range"/> over a list of <paramref name="length"/> subscribers.</summary>
    public StartVisitor(ref readonly NotifierRange range, int length)
    {
        _range = ref range;
        _length = length;
        Refused = null;
    }

    /// <inheritdoc />
    public static MmuNotifierOps Op => MmuNotifierOps.InvalidateRangeStart;

    /// <summary>Which list indices refused; null while none did (the common case allocates nothing).</summary>
    public bool[]? Refused { readonly get; private set; }

    /// <inheritdoc />
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool Visit(MmuNotifierSubscription subscription, int index)
    {
        if (!subscription.Notifier.InvalidateRangeStart(in _range))
        {
            Refused ??= new bool[_length];
            Refused[index] = true;
        }

        return true;
    }
}
