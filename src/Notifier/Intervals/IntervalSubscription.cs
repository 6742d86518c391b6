namespace Hypervisor.Notifier.Intervals;

/// <summary>
/// One interval subscription (Linux's <c>struct mmu_interval_notifier</c>): a subscriber interested only in
/// <c>[Start, End)</c> of one mm. Made by <see cref="MmuNotifierChain.InsertInterval"/>.
/// </summary>
/// <remarks>
/// The read side of the collision-retry protocol: <c>seq = ReadBegin()</c>; resolve pages; take the
/// subscriber's lock; if <c>ReadRetry(seq)</c> drop the lock and start again, else install mappings.
/// The sequence value is written only by <see cref="SetSequence"/> (from <see cref="IIntervalNotifier.Invalidate"/>,
/// under the subscriber's lock) and by the chain at insertion.
/// </remarks>
public sealed class IntervalSubscription
{
    private ulong _sequence;

    internal IntervalSubscription(MmuNotifierChain chain, Hva start, Hva end, IIntervalNotifier notifier)
    {
        Chain = chain;
        Start = start;
        End = end;
        Notifier = notifier;
    }

    /// <summary>The chain (and so the mm) the interval is on.</summary>
    public MmuNotifierChain Chain { get; }

    /// <summary>Inclusive start of the interval.</summary>
    public Hva Start { get; }

    /// <summary>Exclusive end of the interval.</summary>
    public Hva End { get; }

    /// <summary>The subscriber's callback.</summary>
    public IIntervalNotifier Notifier { get; }

    /// <summary>True once <see cref="Remove"/> has been called.</summary>
    public bool IsRemoved { get; internal set; }

    /// <summary>The subscription's current sequence value (for diagnostics).</summary>
    public ulong Sequence => Volatile.Read(ref _sequence);

    /// <summary>The tree node while the interval is in the chain's tree; null while an insertion is deferred.</summary>
    internal IntervalTreeNode<IntervalSubscription>? Node { get; set; }

    /// <summary>
    /// Begins a read: waits while an invalidation that covers this interval is in flight, then returns the
    /// sequence value to pass to <see cref="ReadRetry"/>. Must not be called from inside a notifier callback.
    /// </summary>
    public ulong ReadBegin() => Chain.IntervalReadBegin(this);

    /// <summary>
    /// True when an invalidation touched the interval since <paramref name="sequence"/> was read: the
    /// caller must discard what it resolved and retry. Call under the subscriber's lock.
    /// </summary>
    public bool ReadRetry(ulong sequence) => Volatile.Read(ref _sequence) != sequence;

    /// <summary>Lockless early-out hint with the same answer as <see cref="ReadRetry"/>; a false answer is not final.</summary>
    public bool CheckRetry(ulong sequence) => Volatile.Read(ref _sequence) != sequence;

    /// <summary>Records the sequence of the invalidation now running; called from <see cref="IIntervalNotifier.Invalidate"/>.</summary>
    public void SetSequence(ulong currentSequence) => Volatile.Write(ref _sequence, currentSequence);

    /// <summary>
    /// Removes the interval. If an invalidation is in flight the removal is deferred and this call waits
    /// until it has finished, so no callback of this subscription runs after it returns. Never call from a callback.
    /// </summary>
    public void Remove() => Chain.RemoveInterval(this);

    /// <inheritdoc />
    public override string ToString() => $"interval [{Start}, {End}) on mm {Chain.Mm.Id}";

    internal void InitialiseSequence(ulong value) => Volatile.Write(ref _sequence, value);
}
