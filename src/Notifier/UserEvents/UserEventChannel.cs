using Hypervisor.Notifier.Intervals;

namespace Hypervisor.Notifier.UserEvents;

/// <summary>
/// A user-space invalidation channel on one mm, after the 2010 ummunotify patch: a consumer (say an RDMA
/// memory-registration cache) registers regions by cookie and learns when any of them is invalidated. Each
/// region has at most one unread event; hits before a read coalesce into it (dropping the hint range). A
/// 64-bit generation counter, readable without a call, tells the consumer whether anything happened at all.
/// </summary>
/// <remarks>
/// <para>
/// Only <see cref="IMmuNotifier.InvalidateRangeStart"/> is implemented: no end, no release, as in
/// ummunotify. The region list outlives the mm's exit until <see cref="Dispose"/>.
/// </para>
/// <para>
/// Locking: one lock guards the regions, the pending list, the counters and the waiter. Lock order: the
/// chain's read side (a start callback) → this lock. Nothing is called out while the lock is held; waiters
/// are completed after it is released, and their continuations run asynchronously.
/// </para>
/// </remarks>
public sealed class UserEventChannel : IMmuNotifier, IDisposable
{
    private readonly Lock _lock = new();
    private readonly IMm _mm;

    // Guarded by _lock. Every region is in both _byCookie and _regions; a region is on the pending list
    // (_pendingHead.._pendingTail, oldest first) iff IsPending, and _pendingCount is the list's length.
    private readonly IntervalTree<UserEventRegion> _regions = new();
    private readonly Dictionary<ulong, UserEventRegion> _byCookie = new();
    private UserEventRegion? _pendingHead;
    private UserEventRegion? _pendingTail;
    private int _pendingCount;

    // Guarded by _lock: the pending list drained during a read that had no room left for the Last event.
    private bool _lastOwed;

    // Written only under _lock (so increments never race); read anywhere with Volatile.Read.
    private ulong _generation;

    // Guarded by _lock: completed (true on a hit, false on dispose) and cleared by whoever completes it.
    private TaskCompletionSource<bool>? _waiter;

    // Set once, under _lock; read without it on the fast paths.
    private volatile bool _disposed;
    private MmuNotifierSubscription? _subscription;

    // Statistics, guarded by _lock.
    private long _eventsDelivered;
    private long _lastEventsDelivered;
    private long _rangeStarts;
    private long _regionHits;
    private long _hitsCoalesced;

    private UserEventChannel(IMm mm) => _mm = mm;

    /// <summary>The mm the channel watches.</summary>
    public IMm Mm => _mm;

    /// <summary>
    /// The generation counter: the number of range starts that hit at least one registered region. Read
    /// without a lock; a consumer that stored the counter of the last <see cref="UserEventType.Last"/>
    /// event knows nothing it registered changed while this still equals it.
    /// </summary>
    /// <exception cref="ObjectDisposedException">The channel was disposed.</exception>
    public ulong Generation
    {
        get
        {
            ThrowIfDisposed();
            return Volatile.Read(ref _generation);
        }
    }

    /// <summary>
    /// A read-only reference to the generation counter itself, the model of ummunotify's mmap'ed counter
    /// page: take it once, then poll with <c>Volatile.Read(in counter)</c> on every cache lookup, with no
    /// call and no lock. The counter only grows, is updated atomically (64-bit), and an increment is visible
    /// no later than the pending events of that start are visible to <see cref="Read"/>. The reference
    /// stays valid (and keeps the channel alive) after <see cref="Dispose"/>, but stops changing.
    /// </summary>
    /// <exception cref="ObjectDisposedException">The channel was disposed.</exception>
    public ref readonly ulong GenerationRef
    {
        get
        {
            ThrowIfDisposed();
            return ref _generation;
        }
    }

    /// <summary>
    /// True when <see cref="Read"/> would return at least one event now: an invalidate is pending, or a
    /// Last event is owed from a read whose buffer was full.
    /// </summary>
    /// <exception cref="ObjectDisposedException">The channel was disposed.</exception>
    public bool HasPendingEvents
    {
        get
        {
            lock (_lock)
            {
                ThrowIfDisposed();
                return HasPendingLocked;
            }
        }
    }

    /// <summary>A consistent snapshot of the channel's counters.</summary>
    /// <exception cref="ObjectDisposedException">The channel was disposed.</exception>
    public UserEventChannelStats Stats
    {
        get
        {
            lock (_lock)
            {
                ThrowIfDisposed();
                return new UserEventChannelStats
                {
                    Regions = _byCookie.Count,
                    PendingEvents = _pendingCount,
                    EventsDelivered = _eventsDelivered,
                    LastEventsDelivered = _lastEventsDelivered,
                    Generation = _generation,
                    RangeStarts = _rangeStarts,
                    RegionHits = _regionHits,
                    HitsCoalesced = _hitsCoalesced,
                };
            }
        }
    }

    private bool HasPendingLocked => _pendingHead is not null || _lastOwed;

    /// <summary>
    /// Opens a channel on <paramref name="mm"/> and registers it on the mm's notifier chain (ummunotify's
    /// <c>open()</c>). Dispose it to unregister.
    /// </summary>
    /// <param name="mm">The mm to watch.</param>
    /// <exception cref="ArgumentNullException"><paramref name="mm"/> is null.</exception>
    /// <exception cref="MmExitedException">The mm has begun to exit.</exception>
    public static UserEventChannel Open(IMm mm)
    {
        ArgumentNullException.ThrowIfNull(mm);
        var channel = new UserEventChannel(mm);

        // Starts may reach the channel before Register returns; it is fully built, and has no regions yet.
        channel._subscription = mm.Notifiers.Register(channel);
        return channel;
    }

    /// <summary>A channel that is not on any chain: tests drive its start callback directly.</summary>
    internal static UserEventChannel CreateDetached(IMm mm)
    {
        ArgumentNullException.ThrowIfNull(mm);
        return new UserEventChannel(mm);
    }

    /// <summary>
    /// Registers <c>[start, end)</c> under <paramref name="cookie"/>. Regions may overlap each other. A start
    /// already in flight when this returns may or may not report the new region.
    /// </summary>
    /// <param name="cookie">The consumer's identifier for the region, unique within the channel.</param>
    /// <param name="start">Inclusive, page-aligned start.</param>
    /// <param name="end">Exclusive, page-aligned end above <paramref name="start"/>.</param>
    /// <exception cref="InvalidRangeException">The range is empty, reversed, unaligned or beyond the address space.</exception>
    /// <exception cref="DuplicateCookieException"><paramref name="cookie"/> is already registered.</exception>
    /// <exception cref="ObjectDisposedException">The channel was disposed.</exception>
    public void RegisterRegion(ulong cookie, Hva start, Hva end)
    {
        ThrowIfDisposed();
        InvalidRangeException.ThrowIfInvalidPageRange(start, end, nameof(start));
        var region = new UserEventRegion(cookie, start, end);
        lock (_lock)
        {
            ThrowIfDisposed();
            if (!_byCookie.TryAdd(cookie, region))
            {
                throw new DuplicateCookieException(cookie);
            }

            region.Node = _regions.Insert(start.Value, end.Value - 1, region);
        }
    }

    /// <summary>Unregisters the region of <paramref name="cookie"/> and drops its unread event, if any.</summary>
    /// <param name="cookie">A registered cookie.</param>
    /// <exception cref="UnknownCookieException"><paramref name="cookie"/> is not registered.</exception>
    /// <exception cref="ObjectDisposedException">The channel was disposed.</exception>
    public void UnregisterRegion(ulong cookie)
    {
        lock (_lock)
        {
            ThrowIfDisposed();
            if (!_byCookie.Remove(cookie, out var region))
            {
                throw new UnknownCookieException(cookie);
            }

            _regions.Remove(region.Node!);
            if (region.IsPending)
            {
                Unlink(region);
            }
        }
    }

    /// <summary>
    /// Moves pending events, oldest first, into <paramref name="buffer"/> without blocking, and re-arms
    /// each region read (its next hit queues a fresh event with a hint). When the pending list drains, one
    /// <see cref="UserEventType.Last"/> event with the current counter follows the invalidates; if the
    /// buffer is full by then, the Last event is the first thing the next read returns.
    /// </summary>
    /// <param name="buffer">Where to write events; at least one element.</param>
    /// <returns>The number of events written; 0 when nothing is pending.</returns>
    /// <exception cref="ArgumentException"><paramref name="buffer"/> is empty.</exception>
    /// <exception cref="ObjectDisposedException">The channel was disposed.</exception>
    public int Read(Span<UserEvent> buffer)
    {
        ThrowIfDisposed();
        if (buffer.Length < 1)
        {
            throw new ArgumentException(
                $"buffer length {buffer.Length} is too small: Read needs room for at least one event", nameof(buffer));
        }

        lock (_lock)
        {
            ThrowIfDisposed();
            var written = 0;
            while (written < buffer.Length && _pendingHead is { } region)
            {
                buffer[written++] = region.HasHint
                    ? new UserEvent(UserEventType.Invalidate, UserEventFlags.Hint, region.HintStart, region.HintEnd, region.Cookie)
                    : new UserEvent(UserEventType.Invalidate, UserEventFlags.None, region.Start, region.End, region.Cookie);
                Unlink(region);
            }

            _eventsDelivered += written;
            if (_pendingHead is null)
            {
                _lastOwed |= written > 0;
                if (_lastOwed && written < buffer.Length)
                {
                    buffer[written++] = new UserEvent(UserEventType.Last, UserEventFlags.None, Hva.Zero, Hva.Zero, _generation);
                    _lastOwed = false;
                    _lastEventsDelivered++;
                }
            }

            return written;
        }
    }

    /// <summary>
    /// Completes with true as soon as an event is pending (at once if one already is), or with false when
    /// the channel is (or gets) disposed. True means a read would have found an event at that moment;
    /// another reader may still take it first.
    /// </summary>
    /// <param name="cancellationToken">Cancels the wait with <see cref="OperationCanceledException"/>.</param>
    /// <returns>True when events are pending, false when the channel is disposed.</returns>
    public ValueTask<bool> WaitAsync(CancellationToken cancellationToken = default)
    {
        if (cancellationToken.IsCancellationRequested)
        {
            return ValueTask.FromCanceled<bool>(cancellationToken);
        }

        TaskCompletionSource<bool> waiter;
        lock (_lock)
        {
            // Disposal answers false rather than throwing, so that a consumer loop ends cleanly however
            // its wait and the dispose interleave.
            if (_disposed)
            {
                return new ValueTask<bool>(false);
            }

            if (HasPendingLocked)
            {
                return new ValueTask<bool>(true);
            }

            // Created under the lock after seeing nothing pending: the next hit completes it, so no wake-up is lost.
            waiter = _waiter ??= new TaskCompletionSource<bool>(TaskCreationOptions.RunContinuationsAsynchronously);
        }

        return cancellationToken.CanBeCanceled
            ? new ValueTask<bool>(waiter.Task.WaitAsync(cancellationToken))
            : new ValueTask<bool>(waiter.Task);
    }

    /// <summary>
    /// Unregisters the channel from the mm's chain (which waits until no start callback of it is running)
    /// and completes pending waits with false. Idempotent; works after the mm has exited. Must not be called
    /// from inside a notifier callback.
    /// </summary>
    public void Dispose()
    {
        TaskCompletionSource<bool>? waiter;
        MmuNotifierSubscription? subscription;
        lock (_lock)
        {
            if (_disposed)
            {
                return;
            }

            _disposed = true;
            waiter = _waiter;
            _waiter = null;
            subscription = _subscription;
            _subscription = null;
        }

        try
        {
            if (subscription is not null)
            {
                _mm.Notifiers.Unregister(subscription);
            }
        }
        finally
        {
            waiter?.TrySetResult(false);
        }
    }

    /// <summary>
    /// Queues or coalesces an event for every region overlapping <c>[range.Start, range.End)</c> and, if
    /// any did, bumps the generation counter once and wakes waiters. Never sleeps beyond the channel's
    /// short lock, so it never fails, blockable range or not. Ignored once the channel is disposed.
    /// </summary>
    bool IMmuNotifier.InvalidateRangeStart(in NotifierRange range)
    {
        if (_disposed)
        {
            return true;
        }

        var start = range.Start;
        var end = range.End;
        TaskCompletionSource<bool>? waiter = null;
        lock (_lock)
        {
            if (_disposed)
            {
                return true;
            }

            _rangeStarts++;
            var hit = false;
            foreach (var node in _regions.Overlapping(start.Value, end.Value - 1))
            {
                hit = true;
                _regionHits++;
                var region = node.Value;
                if (region.IsPending)
                {
                    // A second hit before the consumer read the first: one hint cannot describe both.
                    region.HasHint = false;
                    _hitsCoalesced++;
                }
                else
                {
                    region.HasHint = true;
                    region.HintStart = start > region.Start ? start : region.Start;
                    region.HintEnd = end < region.End ? end : region.End;
                    Append(region);
                }
            }

            if (hit)
            {
                Volatile.Write(ref _generation, _generation + 1);
                waiter = _waiter;
                _waiter = null;
            }
        }

        waiter?.TrySetResult(true);
        return true;
    }

    /// <inheritdoc />
    public override string ToString()
    {
        lock (_lock)
        {
            return $"user event channel on mm {_mm.Id}: {_byCookie.Count} regions, {_pendingCount} pending, generation {_generation}{(_disposed ? " (disposed)" : string.Empty)}";
        }
    }

    private void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(_disposed, this);

    /// <summary>Appends <paramref name="region"/> to the pending list (newest last). Caller holds the lock.</summary>
    private void Append(UserEventRegion region)
    {
        region.IsPending = true;
        region.PendingPrevious = _pendingTail;
        region.PendingNext = null;
        if (_pendingTail is null)
        {
            _pendingHead = region;
        }
        else
        {
            _pendingTail.PendingNext = region;
        }

        _pendingTail = region;
        _pendingCount++;
    }

    /// <summary>Takes <paramref name="region"/> off the pending list, re-arming it. Caller holds the lock.</summary>
    private void Unlink(UserEventRegion region)
    {
        if (region.PendingPrevious is null)
        {
            _pendingHead = region.PendingNext;
        }
        else
        {
            region.PendingPrevious.PendingNext = region.PendingNext;
        }

        if (region.PendingNext is null)
        {
            _pendingTail = region.PendingPrevious;
        }
        else
        {
            region.PendingNext.PendingPrevious = region.PendingPrevious;
        }

        region.PendingPrevious = null;
        region.PendingNext = null;
        region.IsPending = false;
        region.HasHint = false;
        _pendingCount--;
    }
}
