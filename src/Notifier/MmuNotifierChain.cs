using System.Collections.Concurrent;
using Hypervisor.Notifier.Intervals;
using Hypervisor.Notifier.OpVisitors;
using Hypervisor.Notifier.Srcu;

namespace Hypervisor.Notifier;

/// <summary>
/// One mm's notifier chain (Linux's <c>mmu_notifier_subscriptions</c> plus the <c>__mmu_notifier_*</c>
/// entry points): the listed subscribers, the interval tree, and the calls the primary MMU makes on them.
/// </summary>
/// <remarks>
/// <para>Locking. Callers issue start/end while holding the host's mmap lock or a reverse-map lock and never
/// a page-table lock; the young ops, <see cref="ChangePte"/> and <see cref="InvalidateSecondaryTlbs"/> may be
/// issued under a page-table lock. <c>_lock</c> (Linux's <c>subscriptions-&gt;lock</c>) guards the list
/// publication, the interval tree, the interval sequence and the deferred list; it is a leaf lock: nothing
/// is taken under it and no callback ever runs under it. <c>_getLock</c> serialises get/put allocation and
/// is taken before <c>_lock</c>. <c>_waitQueue</c> is only a monitor for sleeping interval readers.</para>
/// <para>Read side. Every callback runs inside a read-side section of the chain's <see cref="SrcuDomain"/>;
/// a start..end pair holds one section from the start until the end returns. Hence
/// <see cref="Synchronize"/> (used by register, unregister and exit) waits for whole in-flight pairs, which
/// gives Linux's <c>mm_take_all_locks</c> guarantee: a subscriber never sees an end whose start it missed,
/// and once <see cref="Register"/> returns it sees every later start.</para>
/// <para>The list is copy-on-write: an immutable array published with a volatile write, newest subscriber
/// first (as <c>hlist_add_head</c>). A pair remembers the array its start used (in the range), so its end
/// reaches exactly the subscribers that saw the start and are still listed.</para>
/// </remarks>
public sealed class MmuNotifierChain
{
    private static readonly ConcurrentDictionary<Type, MmuNotifierOps> s_opsByType = new();

    private readonly Lock _lock = new();
    private readonly Lock _getLock = new();
    private readonly object _waitQueue = new();
    private readonly SrcuDomain _srcu = new();
    private readonly IntervalTree<IntervalSubscription> _tree = new();
    private readonly List<IntervalSubscription> _deferred = [];

    private MmuNotifierSubscription[] _list = [];
    private volatile bool _exiting;
    private volatile bool _hasIntervals;

    // Interval protocol state, guarded by _lock. Even = idle; odd = an invalidation holds the tree and
    // insertions/removals are deferred until the last active range ends.
    private ulong _intervalSequence = 2;
    private int _activeRanges;
    private int _sequenceWaiters;

    private long _starts;
    private long _ends;
    private long _failedStarts;
    private long _intervalInvalidations;
    private long _youngCalls;
    private long _youngHits;
    private long _changePtes;
    private long _secondaryTlbInvalidations;
    private long _releases;

    /// <summary>Creates the (empty) chain of <paramref name="mm"/>, following today's contract.</summary>
    public MmuNotifierChain(IMm mm)
        : this(mm, NotifierEra.Current)
    {
    }

    /// <summary>
    /// Creates the (empty) chain of <paramref name="mm"/> following the contract of <paramref name="era"/>: a historical
    /// era re-creates a race the current contract closed, for demonstrations (<see cref="NotifierEra"/>).
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="era"/> is not a defined era.</exception>
    public MmuNotifierChain(IMm mm, NotifierEra era)
    {
        ArgumentNullException.ThrowIfNull(mm);
        if (!Enum.IsDefined(era))
        {
            throw new ArgumentOutOfRangeException(nameof(era), era, $"notifier era {(int)era} does not exist: use one of {string.Join(", ", Enum.GetNames<NotifierEra>())}");
        }

        Mm = mm;
        Era = era;
    }

    /// <summary>The mm this chain belongs to.</summary>
    public IMm Mm { get; }

    /// <summary>The contract this chain follows: <see cref="NotifierEra.Current"/> unless a demonstration asked for another.</summary>
    public NotifierEra Era { get; }

    /// <summary>True once exit (<see cref="Release"/>) has started: registrations and interval inserts are refused.</summary>
    public bool IsExiting => _exiting;

    /// <summary>
    /// True while register, unregister, exit or synchronize waits for a read-side section in flight (a callback, or a
    /// start..end pair) to end. Lets a demonstration's scheduler see that a thread is blocked there.
    /// </summary>
    public bool IsWaitingForGracePeriod => _srcu.IsWaitingForReaders;

    /// <summary>Number of listed subscriptions.</summary>
    public int SubscriberCount => Volatile.Read(ref _list).Length;

    /// <summary>The listed subscriptions, newest first (a snapshot).</summary>
    public IReadOnlyList<MmuNotifierSubscription> Subscribers => Volatile.Read(ref _list);

    /// <summary>
    /// The chain's SRCU domain. For tests: its epoch flips when a grace period begins, which shows that
    /// register, unregister, synchronize or a put's deferred free has reached its wait.
    /// </summary>
    internal SrcuDomain ReadSide => _srcu;

    /// <summary>Threads sleeping until the interval sequence moves (readers, removals). For tests: shows that one has reached its wait.</summary>
    internal int SequenceWaiters => Volatile.Read(ref _sequenceWaiters);

    /// <summary>A snapshot of the chain's counters.</summary>
    public MmuNotifierChainStats Stats
    {
        get
        {
            int intervals;
            ulong sequence;
            lock (_lock)
            {
                intervals = _tree.Count;
                sequence = _intervalSequence;
            }

            return new MmuNotifierChainStats
            {
                Subscribers = SubscriberCount,
                Intervals = intervals,
                Starts = Volatile.Read(ref _starts),
                Ends = Volatile.Read(ref _ends),
                FailedStarts = Volatile.Read(ref _failedStarts),
                IntervalInvalidations = Volatile.Read(ref _intervalInvalidations),
                YoungCalls = Volatile.Read(ref _youngCalls),
                YoungHits = Volatile.Read(ref _youngHits),
                ChangePtes = Volatile.Read(ref _changePtes),
                SecondaryTlbInvalidations = Volatile.Read(ref _secondaryTlbInvalidations),
                Releases = Volatile.Read(ref _releases),
                GracePeriods = _srcu.GracePeriods,
                IntervalSequence = sequence,
                Exiting = _exiting,
            };
        }
    }

    /// <summary>
    /// Lists <paramref name="notifier"/> (Linux's <c>mmu_notifier_register</c>). When this returns, every
    /// start issued afterwards reaches the subscriber, and no start..end pair that it missed is still in
    /// flight. Callbacks may arrive as soon as it is listed, before this returns.
    /// </summary>
    /// <exception cref="MmExitedException">The mm has begun to exit.</exception>
    /// <exception cref="SubscriptionStateException">The same notifier object is already listed on this chain.</exception>
    /// <exception cref="NotifierContractException">The notifier implements secondary-TLB invalidation together with start or end.</exception>
    public MmuNotifierSubscription Register(IMmuNotifier notifier) => RegisterCore(notifier, allocator: null);

    /// <summary>
    /// Unlists a subscription made by <see cref="Register"/> (Linux's <c>mmu_notifier_unregister</c>). If it
    /// is still listed its <see cref="IMmuNotifier.Release"/> runs first (unless exit already released it:
    /// release runs exactly once). Returns only when no callback of the subscription is running or can start.
    /// Because a start..end pair holds the read side until its end, this also waits for every pair in
    /// flight: never call it from inside a callback or from a thread that has a range started and not ended.
    /// In the historical eras (<see cref="Era"/>) the subscription is unlisted before its release; under
    /// <see cref="NotifierEra.UnlinkClaimsRelease"/> that release also runs outside the read side.
    /// </summary>
    /// <exception cref="SubscriptionStateException">The subscription belongs to another chain, came from <see cref="Get"/>, or was already unregistered.</exception>
    public void Unregister(MmuNotifierSubscription subscription)
    {
        CheckOwnership(subscription);
        if (subscription.Allocator is not null)
        {
            throw new SubscriptionStateException(
                $"{subscription} was made by Get: release it with Put, not Unregister");
        }

        bool listed;
        var unlinkFirst = Era is NotifierEra.ReleaseAfterUnlink or NotifierEra.UnlinkClaimsRelease;
        lock (_lock)
        {
            if (subscription.Retired)
            {
                throw new SubscriptionStateException($"{subscription} was already unregistered: unregister once per registration");
            }

            subscription.Retired = true;
            listed = subscription.IsListed;
            if (listed && unlinkFirst)
            {
                // Historical eras: the unlink comes first, so an invalidation issued from here on misses the subscriber.
                Unlist(subscription);
            }
        }

        if (listed && Era == NotifierEra.UnlinkClaimsRelease)
        {
            // 3.9-rc: the release is called outside any read-side section, so an exit's synchronize does not wait for it.
            ReleaseOnce(subscription);
        }
        else if (listed)
        {
            ReleaseInReadSide(subscription);
            if (!unlinkFirst)
            {
                lock (_lock)
                {
                    Unlist(subscription);
                }
            }
        }

        _srcu.Synchronize();
    }

    /// <summary>
    /// Returns the subscription that <paramref name="allocator"/> made for this mm, taking a reference, or
    /// makes and lists one (Linux's <c>mmu_notifier_get</c>). Pair every call with <see cref="Put"/>.
    /// </summary>
    /// <exception cref="MmExitedException">The mm has begun to exit.</exception>
    public MmuNotifierSubscription Get(IMmuNotifierAllocator allocator)
    {
        ArgumentNullException.ThrowIfNull(allocator);
        lock (_getLock)
        {
            lock (_lock)
            {
                ThrowIfExiting("get");
                foreach (var existing in _list)
                {
                    if (ReferenceEquals(existing.Allocator, allocator) && !existing.Retired)
                    {
                        existing.Users++;
                        return existing;
                    }
                }
            }

            var notifier = allocator.Allocate(Mm)
                ?? throw new NotifierContractException($"allocator {allocator.GetType().Name} returned null for mm {Mm.Id}");
            return RegisterCore(notifier, allocator);
        }
    }

    /// <summary>
    /// Drops a reference taken by <see cref="Get"/> (Linux's <c>mmu_notifier_put</c>). The last put unlists
    /// the subscription without calling release (the subscriber must already have stopped using its
    /// mappings) and frees it through the allocator after a grace period, on a background thread.
    /// </summary>
    /// <exception cref="SubscriptionStateException">The subscription came from <see cref="Register"/> or has no references left.</exception>
    public void Put(MmuNotifierSubscription subscription)
    {
        CheckOwnership(subscription);
        var allocator = subscription.Allocator
            ?? throw new SubscriptionStateException($"{subscription} was made by Register: remove it with Unregister, not Put");
        lock (_lock)
        {
            if (subscription.Retired || subscription.Users <= 0)
            {
                throw new SubscriptionStateException($"{subscription} has no references left: put once per get");
            }

            if (--subscription.Users > 0)
            {
                return;
            }

            subscription.Retired = true;
            Unlist(subscription);
        }

        var notifier = subscription.Notifier;
        _srcu.CallAfterGracePeriod(() => allocator.Free(notifier));
    }

    /// <summary>
    /// Waits until no callback that began before this call is running and every pending free of a put
    /// subscription has run (Linux's <c>mmu_notifier_synchronize</c>).
    /// </summary>
    public void Synchronize() => _srcu.Barrier();

    /// <summary>
    /// Announces that <c>[range.Start, range.End)</c> is about to change (Linux's
    /// <c>mmu_notifier_invalidate_range_start</c>): interval subscribers first, then listed subscribers.
    /// Returns false when the range is not blockable and a subscriber refused; then the subscribers that
    /// accepted have already had their end, and the caller must not call <see cref="InvalidateRangeEnd"/>.
    /// </summary>
    /// <exception cref="NotifierContractException">The range already had a start, belongs to another mm,
    /// or a subscriber refused a blockable range.</exception>
    public bool InvalidateRangeStart(ref NotifierRange range)
    {
        if (range.Subscribers is not null)
        {
            throw new NotifierContractException($"{range}: start issued twice for one range; end the first one");
        }

        if (!ReferenceEquals(range.Mm, Mm))
        {
            throw new NotifierContractException($"{range}: the range names mm {range.Mm?.Id}, but this chain belongs to mm {Mm.Id}");
        }

        Interlocked.Increment(ref _starts);
        var token = _srcu.ReadLock();
        var ok = false;
        try
        {
            if (_hasIntervals)
            {
                if (!IntervalInvalidateStart(in range))
                {
                    return Refused(in range, "an interval subscriber");
                }

                range.IntervalsActive = true;
            }

            var list = Volatile.Read(ref _list);
            if (list.Length != 0 && !CallStarts(list, in range))
            {
                if (range.IntervalsActive)
                {
                    IntervalInvalidateEnd();
                    range.IntervalsActive = false;
                }

                return Refused(in range, "a subscriber");
            }

            range.Subscribers = list;
            range.ReadToken = token;
            ok = true;
            return true;
        }
        finally
        {
            if (!ok)
            {
                _srcu.ReadUnlock(token);
            }
        }
    }

    /// <summary>
    /// Announces that the change begun by <see cref="InvalidateRangeStart"/> is complete (Linux's
    /// <c>mmu_notifier_invalidate_range_end</c>): the interval side first, then every subscriber that saw
    /// the start and is still listed.
    /// </summary>
    /// <exception cref="NotifierContractException">The range had no successful start, or was already ended.</exception>
    public void InvalidateRangeEnd(ref NotifierRange range)
    {
        var list = range.Subscribers
            ?? throw new NotifierContractException($"{range}: end without a successful start (or ended twice)");
        var token = range.ReadToken;
        range.Subscribers = null;
        Interlocked.Increment(ref _ends);
        try
        {
            if (range.IntervalsActive)
            {
                range.IntervalsActive = false;
                IntervalInvalidateEnd();
            }

            var end = new EndVisitor(in range);
            ForEachSubscriber(list, ref end);
        }
        finally
        {
            _srcu.ReadUnlock(token);
        }
    }

    /// <summary>
    /// Host aging after clearing the CPU accessed bit (Linux's <c>mmu_notifier_clear_flush_young</c>): every
    /// subscriber tests, clears and flushes its accessed bits in <c>[start, end)</c>; true if any was young.
    /// May be called under a page-table lock.
    /// </summary>
    public bool ClearFlushYoung(Hva start, Hva end)
    {
        ThrowIfEmpty(start, end);
        var visitor = new ClearFlushYoungVisitor(Mm, start, end);
        ForEachUnderReadSide(ref visitor);
        CountYoung(visitor.Young);
        return visitor.Young;
    }

    /// <summary>As <see cref="ClearFlushYoung"/> without the secondary flush (page_idle, DAMON).</summary>
    public bool ClearYoung(Hva start, Hva end)
    {
        ThrowIfEmpty(start, end);
        var visitor = new ClearYoungVisitor(Mm, start, end);
        ForEachUnderReadSide(ref visitor);
        CountYoung(visitor.Young);
        return visitor.Young;
    }

    /// <summary>
    /// <see cref="ClearYoung"/> over the page-aligned <c>[start, end)</c> answering per page (the multi-gen LRU's walk
    /// asks once per run of a PTE table): the bitmap's words covering the range are overwritten, bit <c>i</c> of
    /// <paramref name="young"/> set when any subscriber's entry for the page at <c>start + i × 4096</c> was young.
    /// Returns true when any was.
    /// May be called under a page-table lock.
    /// </summary>
    /// <exception cref="InvalidRangeException">The range is empty, reversed or not page-aligned.</exception>
    /// <exception cref="ArgumentException"><paramref name="young"/> has fewer bits than the range has pages.</exception>
    public bool ClearYoungBitmap(Hva start, Hva end, ulong[] young)
    {
        var words = PrepareYoungBitmap(start, end, young);
        var visitor = new ClearYoungBitmapVisitor(Mm, start, end, young);
        ForEachUnderReadSide(ref visitor);
        var any = words.ContainsAnyExcept(0UL);
        CountYoung(any);
        return any;
    }

    /// <summary>
    /// <see cref="ClearFlushYoung"/> over the page-aligned <c>[start, end)</c> answering per page (the classic LRU's
    /// batched aging asks once per run of a PTE table): the bitmap's words covering the range are overwritten, bit
    /// <c>i</c> of <paramref name="young"/> set when any subscriber's entry for the page at <c>start + i × 4096</c> was
    /// young; each subscriber has flushed what it cleared when this returns. Returns true when any was young; counted as
    /// one young query. May be called under a page-table lock.
    /// </summary>
    /// <exception cref="InvalidRangeException">The range is empty, reversed or not page-aligned.</exception>
    /// <exception cref="ArgumentException"><paramref name="young"/> has fewer bits than the range has pages.</exception>
    public bool ClearFlushYoungBitmap(Hva start, Hva end, ulong[] young)
    {
        var words = PrepareYoungBitmap(start, end, young);
        var visitor = new ClearFlushYoungBitmapVisitor(Mm, start, end, young);
        ForEachUnderReadSide(ref visitor);
        var any = words.ContainsAnyExcept(0UL);
        CountYoung(any);
        return any;
    }

    /// <summary>Checks a per-page young query's range and bitmap and clears the bitmap's words that cover the range.</summary>
    private static Span<ulong> PrepareYoungBitmap(Hva start, Hva end, ulong[] young)
    {
        ArgumentNullException.ThrowIfNull(young);
        ThrowIfEmpty(start, end);
        if (!start.IsPageAligned || !end.IsPageAligned)
        {
            throw new InvalidRangeException(NotifierRule.EmptyOrReversedRange, $"range [{start}, {end}) is not page-aligned: a per-page young bitmap needs whole pages");
        }

        var pages = (end - start) >> Paging.PageShift;
        if ((ulong)young.Length * 64 < pages)
        {
            throw new ArgumentException($"a young bitmap of {young.Length} words holds {young.Length * 64} pages, but [{start}, {end}) has {pages}: it needs one bit per page", nameof(young));
        }

        var words = young.AsSpan(0, (int)((pages + 63) >> 6));
        words.Clear();
        return words;
    }

    /// <summary>True if any subscriber's entry for <paramref name="address"/> is young; stops at the first that is. Clears nothing.</summary>
    public bool TestYoung(Hva address)
    {
        var visitor = new TestYoungVisitor(Mm, address);
        ForEachUnderReadSide(ref visitor);
        CountYoung(visitor.Young);
        return visitor.Young;
    }

    /// <summary>
    /// Historical change_pte (Linux 2.6.32–6.9): the host PTE at <paramref name="address"/> now holds
    /// <paramref name="pte"/>. Issued by the host only in its legacy mode, under a page-table lock.
    /// </summary>
    public void ChangePte(Hva address, HostPte pte)
    {
        Interlocked.Increment(ref _changePtes);
        var visitor = new ChangePteVisitor(Mm, address, pte);
        ForEachUnderReadSide(ref visitor);
    }

    /// <summary>The host flushed its TLB for <c>[start, end)</c>: subscribers that cache host page tables flush theirs.</summary>
    public void InvalidateSecondaryTlbs(Hva start, Hva end)
    {
        ThrowIfEmpty(start, end);
        Interlocked.Increment(ref _secondaryTlbInvalidations);
        var visitor = new SecondaryTlbVisitor(Mm, start, end);
        ForEachUnderReadSide(ref visitor);
    }

    /// <summary>
    /// The mm is exiting (Linux's <c>mmu_notifier_release</c>, from <c>exit_mmap</c>): one release-event
    /// invalidation over the whole address space for every interval subscription; then every listed
    /// subscriber's <see cref="IMmuNotifier.Release"/> while it is still listed; then all are unlisted; then
    /// the chain synchronizes. Afterwards start/end still work (the host's final unmap), but only interval
    /// subscribers see them, and registrations are refused. In the historical eras <see cref="NotifierEra.ReleaseAfterUnlink"/>
    /// and <see cref="NotifierEra.UnlinkClaimsRelease"/> each subscriber is unlisted first and released after.
    /// </summary>
    /// <exception cref="MmExitedException">Exit was already issued for this mm.</exception>
    public void Release()
    {
        lock (_lock)
        {
            ThrowIfExiting("a second exit");
            _exiting = true;
        }

        var token = _srcu.ReadLock();
        try
        {
            if (_hasIntervals)
            {
                var range = new NotifierRange(Mm, Hva.Zero, Hva.AddressSpaceEnd, NotifierEvent.Release);
                if (!IntervalInvalidateStart(in range))
                {
                    throw new NotifierContractException($"{range}: an interval subscriber refused the blockable release invalidation");
                }

                IntervalInvalidateEnd();
            }

            if (Era is NotifierEra.ReleaseAfterUnlink or NotifierEra.UnlinkClaimsRelease)
            {
                ReleaseUnlinkingFirst();
            }
            else
            {
                var release = new ReleaseVisitor(this);
                ForEachSubscriber(Volatile.Read(ref _list), ref release);

                lock (_lock)
                {
                    foreach (var subscription in _list)
                    {
                        subscription.Unlist();
                    }

                    Volatile.Write(ref _list, []);
                }
            }
        }
        finally
        {
            _srcu.ReadUnlock(token);
        }

        _srcu.Synchronize();
    }

    /// <summary>
    /// Adds an interval subscription over <c>[start, start + length)</c> (Linux's
    /// <c>mmu_interval_notifier_insert</c>). If an invalidation is in flight the insertion is deferred to
    /// its end and the subscription's sequence makes readers wait for it.
    /// </summary>
    /// <exception cref="InvalidRangeException">The interval is empty, unaligned or outside the address space.</exception>
    /// <exception cref="MmExitedException">The mm has begun to exit.</exception>
    public IntervalSubscription InsertInterval(Hva start, ulong length, IIntervalNotifier notifier)
    {
        ArgumentNullException.ThrowIfNull(notifier);
        if (length == 0 || start.Value + length < start.Value)
        {
            throw new InvalidRangeException(NotifierRule.EmptyOrReversedRange, $"interval at {start} with length {length} is empty or wraps: length must be positive", nameof(length));
        }

        var end = start + length;
        InvalidRangeException.ThrowIfInvalidPageRange(start, end, nameof(length));
        EnableIntervals();

        var subscription = new IntervalSubscription(this, start, end, notifier);
        lock (_lock)
        {
            ThrowIfExiting("inserting an interval notifier");
            if (_activeRanges > 0)
            {
                if ((_intervalSequence & 1) != 0)
                {
                    _deferred.Add(subscription);
                }
                else
                {
                    _intervalSequence |= 1;
                    subscription.Node = _tree.Insert(start.Value, end.Value - 1, subscription);
                }

                subscription.InitialiseSequence(_intervalSequence);
            }
            else
            {
                subscription.InitialiseSequence(_intervalSequence - 1);
                subscription.Node = _tree.Insert(start.Value, end.Value - 1, subscription);
            }
        }

        return subscription;
    }

    /// <summary>Removes an interval subscription; see <see cref="IntervalSubscription.Remove"/>.</summary>
    /// <exception cref="SubscriptionStateException">The subscription belongs to another chain or was already removed.</exception>
    public void RemoveInterval(IntervalSubscription subscription)
    {
        ArgumentNullException.ThrowIfNull(subscription);
        if (!ReferenceEquals(subscription.Chain, this))
        {
            throw new SubscriptionStateException($"{subscription} belongs to mm {subscription.Chain.Mm.Id}, not to mm {Mm.Id}");
        }

        ulong waitFor = 0;
        lock (_lock)
        {
            if (subscription.IsRemoved)
            {
                throw new SubscriptionStateException($"{subscription} was already removed: remove once per insert");
            }

            subscription.IsRemoved = true;
            if ((_intervalSequence & 1) != 0)
            {
                if (subscription.Node is null)
                {
                    // Inserted during this invalidation and not yet in the tree: cancel the insertion.
                    _deferred.Remove(subscription);
                }
                else
                {
                    _deferred.Add(subscription);
                    waitFor = _intervalSequence;
                }
            }
            else
            {
                _tree.Remove(subscription.Node!);
                subscription.Node = null;
            }
        }

        if (waitFor != 0)
        {
            WaitForSequenceChange(waitFor);
        }
    }

    /// <summary>The read-begin half of the interval protocol; see <see cref="IntervalSubscription.ReadBegin"/>.</summary>
    internal ulong IntervalReadBegin(IntervalSubscription subscription)
    {
        ulong sequence;
        bool invalidating;
        lock (_lock)
        {
            sequence = subscription.Sequence;
            invalidating = sequence == _intervalSequence;
        }

        if (invalidating)
        {
            WaitForSequenceChange(sequence);
        }

        return sequence;
    }

    private static MmuNotifierOps OpsOf(IMmuNotifier notifier) =>
        s_opsByType.GetOrAdd(notifier.GetType(), static type =>
        {
            var map = type.GetInterfaceMap(typeof(IMmuNotifier));
            var ops = MmuNotifierOps.None;
            for (var i = 0; i < map.InterfaceMethods.Length; i++)
            {
                // A default-implemented op that the type does not override maps to the interface's own method.
                if (map.TargetMethods[i].DeclaringType != typeof(IMmuNotifier))
                {
                    ops |= Enum.Parse<MmuNotifierOps>(map.InterfaceMethods[i].Name);
                }
            }

            return ops;
        });

    private MmuNotifierSubscription RegisterCore(IMmuNotifier notifier, IMmuNotifierAllocator? allocator)
    {
        ArgumentNullException.ThrowIfNull(notifier);
        var ops = OpsOf(notifier);
        if ((ops & MmuNotifierOps.InvalidateSecondaryTlbs) != 0
            && (ops & (MmuNotifierOps.InvalidateRangeStart | MmuNotifierOps.InvalidateRangeEnd)) != 0)
        {
            throw new NotifierContractException(
                $"{notifier.GetType().Name} implements InvalidateSecondaryTlbs together with start/end: a subscriber that mirrors the host's TLB may not also take range invalidations");
        }

        MmuNotifierSubscription subscription;
        lock (_lock)
        {
            ThrowIfExiting("registering a notifier");
            var old = _list;
            foreach (var existing in old)
            {
                if (ReferenceEquals(existing.Notifier, notifier))
                {
                    throw new SubscriptionStateException($"{existing} is already registered: one subscription per (mm, notifier)");
                }
            }

            subscription = new MmuNotifierSubscription(this, notifier, ops, allocator) { Users = 1 };
            var list = new MmuNotifierSubscription[old.Length + 1];
            list[0] = subscription;
            old.CopyTo(list, 1);
            Volatile.Write(ref _list, list);
        }

        // Wait out every start..end pair that began before the subscriber was listed (it would see their ends only).
        _srcu.Synchronize();
        return subscription;
    }

    /// <summary>
    /// Calls every listed start (Linux calls all of them even after a refusal). If any refused, those that
    /// accepted get their end at once and the answer is false.
    /// </summary>
    private static bool CallStarts(MmuNotifierSubscription[] list, in NotifierRange range)
    {
        var starts = new StartVisitor(in range, list.Length);
        ForEachSubscriber(list, ref starts);
        if (starts.Refused is not { } refused)
        {
            return true;
        }

        var ends = new RefusalEndVisitor(in range, refused);
        ForEachSubscriber(list, ref ends);
        return false;
    }

    /// <summary>
    /// The one op loop of the chain: visits the subscribers of <paramref name="list"/> in list order (newest
    /// first), skipping those that do not implement <c>TVisitor.Op</c> (none skipped for
    /// <see cref="MmuNotifierOps.None"/>), until a visit returns false. The caller holds a read-side section
    /// of <c>_srcu</c> for the whole walk: its own (<see cref="ForEachUnderReadSide"/>), a start..end pair's,
    /// or exit's. Specialised per visitor struct, so the op test is a constant and the visit is inlined.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void ForEachSubscriber<TVisitor>(MmuNotifierSubscription[] list, ref TVisitor visitor)
        where TVisitor : struct, ISubscriberVisitor, allows ref struct
    {
        for (var i = 0; i < list.Length; i++)
        {
            var subscription = list[i];
            if ((TVisitor.Op == MmuNotifierOps.None || (subscription.Ops & TVisitor.Op) != 0) && !visitor.Visit(subscription, i))
            {
                return;
            }
        }
    }

    /// <summary>
    /// <see cref="ForEachSubscriber"/> over the current list inside a read-side section of its own (Linux's
    /// <c>srcu_read_lock</c> + <c>hlist_for_each_entry_rcu</c>): the young ops, change_pte and secondary-TLB
    /// invalidation, which are not part of a start..end pair. Never blocks a writer; may run under a host
    /// page-table lock.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void ForEachUnderReadSide<TVisitor>(ref TVisitor visitor)
        where TVisitor : struct, ISubscriberVisitor, allows ref struct
    {
        var token = _srcu.ReadLock();
        try
        {
            ForEachSubscriber(Volatile.Read(ref _list), ref visitor);
        }
        finally
        {
            _srcu.ReadUnlock(token);
        }
    }

    private bool Refused(in NotifierRange range, string who)
    {
        if (range.IsBlockable)
        {
            throw new NotifierContractException($"{range}: {who} refused a blockable start; only non-blockable starts may fail");
        }

        Interlocked.Increment(ref _failedStarts);
        return false;
    }

    /// <summary>Interval half of start: count the range, mark the tree held if anything overlaps, call each overlap.</summary>
    private bool IntervalInvalidateStart(in NotifierRange range)
    {
        IntervalTreeNode<IntervalSubscription>? node;
        ulong sequence;
        var last = range.End.Value - 1;
        lock (_lock)
        {
            _activeRanges++;
            node = _tree.FirstOverlap(range.Start.Value, last);
            if (node is not null)
            {
                _intervalSequence |= 1;
            }

            sequence = _intervalSequence;
        }

        // The tree is frozen while the sequence is odd, and it stays odd until this range ends: walk without the lock.
        for (; node is not null; node = node.NextOverlap(range.Start.Value, last))
        {
            Interlocked.Increment(ref _intervalInvalidations);
            if (!node.Value.Notifier.Invalidate(node.Value, in range, sequence))
            {
                IntervalInvalidateEnd();
                return false;
            }
        }

        return true;
    }

    /// <summary>Interval half of end: the last active range makes the sequence even, applies deferred changes and wakes readers.</summary>
    private void IntervalInvalidateEnd()
    {
        lock (_lock)
        {
            if (--_activeRanges != 0 || (_intervalSequence & 1) == 0)
            {
                return;
            }

            _intervalSequence++;
            foreach (var subscription in _deferred)
            {
                if (subscription.Node is null)
                {
                    subscription.Node = _tree.Insert(subscription.Start.Value, subscription.End.Value - 1, subscription);
                }
                else
                {
                    _tree.Remove(subscription.Node);
                    subscription.Node = null;
                }
            }

            _deferred.Clear();
        }

        // Pairs with the waiter's increment of _sequenceWaiters before it re-reads the sequence (Dekker).
        Interlocked.MemoryBarrier();
        if (Volatile.Read(ref _sequenceWaiters) != 0)
        {
            lock (_waitQueue)
            {
                Monitor.PulseAll(_waitQueue);
            }
        }
    }

    private void WaitForSequenceChange(ulong sequence)
    {
        lock (_waitQueue)
        {
            Interlocked.Increment(ref _sequenceWaiters);
            try
            {
                while (Volatile.Read(ref _intervalSequence) == sequence)
                {
                    Monitor.Wait(_waitQueue);
                }
            }
            finally
            {
                Interlocked.Decrement(ref _sequenceWaiters);
            }
        }
    }

    /// <summary>Turns the interval side on; waits out in-flight pairs so each of them is either counted or finished.</summary>
    private void EnableIntervals()
    {
        if (_hasIntervals)
        {
            return;
        }

        lock (_getLock)
        {
            if (_hasIntervals)
            {
                return;
            }

            _hasIntervals = true;
            _srcu.Synchronize();
        }
    }

    /// <summary>
    /// The 2008 post-change invalidate (<see cref="NotifierEra.NoRangeStartEnd"/> only): the host announces
    /// <c>[range.Start, range.End)</c> once the change is complete, and each subscriber receives it as a start followed at
    /// once by its end, inside one read-side section. There is no window in which the change is "in progress".
    /// </summary>
    /// <exception cref="NotifierContractException">The chain follows another era, or <paramref name="range"/> already had a start.</exception>
    public void InvalidateRange(ref NotifierRange range)
    {
        if (Era != NotifierEra.NoRangeStartEnd)
        {
            throw new NotifierContractException($"{range}: a post-change invalidate belongs to the {NotifierEra.NoRangeStartEnd} era, but this chain follows {Era}: bracket the change with start and end");
        }

        if (InvalidateRangeStart(ref range))
        {
            InvalidateRangeEnd(ref range);
        }
    }

    /// <summary>
    /// Exit's release in the eras before the 2012 fix and in 3.9-rc: each subscriber in list order is unlisted first and
    /// released after, so between the two an invalidation from another thread no longer reaches it. The caller holds a
    /// read-side section.
    /// </summary>
    private void ReleaseUnlinkingFirst()
    {
        while (true)
        {
            MmuNotifierSubscription subscription;
            lock (_lock)
            {
                if (_list.Length == 0)
                {
                    return;
                }

                subscription = _list[0];
                Unlist(subscription);
            }

            ReleaseOnce(subscription);
        }
    }

    /// <summary>
    /// <see cref="ReleaseOnce"/> inside a read-side section of its own, so exit's and everyone's synchronize waits for it.
    /// </summary>
    private void ReleaseInReadSide(MmuNotifierSubscription subscription)
    {
        var token = _srcu.ReadLock();
        try
        {
            ReleaseOnce(subscription);
        }
        finally
        {
            _srcu.ReadUnlock(token);
        }
    }

    /// <summary>Claims <paramref name="subscription"/>'s single release and, if it implements the op, calls it. The caller holds a read-side section.</summary>
    internal void ReleaseOnce(MmuNotifierSubscription subscription)
    {
        if (!subscription.TryClaimRelease())
        {
            return;
        }

        Interlocked.Increment(ref _releases);
        if ((subscription.Ops & MmuNotifierOps.Release) != 0)
        {
            subscription.Notifier.Release(Mm);
        }
    }

    /// <summary>Removes <paramref name="subscription"/> from the published list. Caller holds <c>_lock</c>.</summary>
    private void Unlist(MmuNotifierSubscription subscription)
    {
        if (!subscription.IsListed)
        {
            return;
        }

        subscription.Unlist();
        var old = _list;
        var index = Array.IndexOf(old, subscription);
        if (index < 0)
        {
            return;
        }

        var list = new MmuNotifierSubscription[old.Length - 1];
        Array.Copy(old, 0, list, 0, index);
        Array.Copy(old, index + 1, list, index, old.Length - index - 1);
        Volatile.Write(ref _list, list);
    }

    private void CheckOwnership(MmuNotifierSubscription subscription)
    {
        ArgumentNullException.ThrowIfNull(subscription);
        if (!ReferenceEquals(subscription.Chain, this))
        {
            throw new SubscriptionStateException($"{subscription} belongs to mm {subscription.Chain.Mm.Id}, not to mm {Mm.Id}");
        }
    }

    private void ThrowIfExiting(string operation)
    {
        if (_exiting)
        {
            throw new MmExitedException(Mm.Id, operation);
        }
    }

    private void CountYoung(bool young)
    {
        Interlocked.Increment(ref _youngCalls);
        if (young)
        {
            Interlocked.Increment(ref _youngHits);
        }
    }

    private static void ThrowIfEmpty(Hva start, Hva end)
    {
        if (end <= start)
        {
            throw new InvalidRangeException(NotifierRule.EmptyOrReversedRange, $"range [{start}, {end}) is empty or reversed: end must be above start");
        }
    }
}
