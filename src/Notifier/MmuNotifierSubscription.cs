namespace Hypervisor.Notifier;

/// <summary>
/// One subscriber listed on one mm's chain (Linux's <c>struct mmu_notifier</c>). Returned by
/// <see cref="MmuNotifierChain.Register"/> or <see cref="MmuNotifierChain.Get"/>.
/// </summary>
public sealed class MmuNotifierSubscription
{
    private int _released;
    private volatile bool _listed;

    internal MmuNotifierSubscription(MmuNotifierChain chain, IMmuNotifier notifier, MmuNotifierOps ops, IMmuNotifierAllocator? allocator)
    {
        Chain = chain;
        Notifier = notifier;
        Ops = ops;
        Allocator = allocator;
        _listed = true;
    }

    /// <summary>The chain (and so the mm) this subscription is on.</summary>
    public MmuNotifierChain Chain { get; }

    /// <summary>The subscriber's callbacks.</summary>
    public IMmuNotifier Notifier { get; }

    /// <summary>The ops the subscriber implements; the chain calls no others.</summary>
    public MmuNotifierOps Ops { get; }

    /// <summary>True while the subscription is on the chain's list and receives callbacks.</summary>
    public bool IsListed => _listed;

    /// <summary>True once <see cref="IMmuNotifier.Release"/> has been issued for this subscription (it never is twice).</summary>
    public bool IsReleased => Volatile.Read(ref _released) != 0;

    /// <summary>The allocator for subscriptions made by <see cref="MmuNotifierChain.Get"/>; null for plain registrations.</summary>
    internal IMmuNotifierAllocator? Allocator { get; }

    /// <summary>get/put reference count (only for allocator-made subscriptions); guarded by the chain lock.</summary>
    internal int Users { get; set; }

    /// <summary>True once unregistered or put to zero: the handle may not be used again. Guarded by the chain lock.</summary>
    internal bool Retired { get; set; }

    /// <summary>Clears the listed flag; the caller holds the chain lock and republishes the list.</summary>
    internal void Unlist() => _listed = false;

    /// <summary>Claims the single release: true for exactly one caller over the subscription's life.</summary>
    internal bool TryClaimRelease() => Interlocked.Exchange(ref _released, 1) == 0;

    /// <inheritdoc />
    public override string ToString() => $"{Notifier.GetType().Name} on mm {Chain.Mm.Id}{(IsListed ? string.Empty : " (unlisted)")}";
}
