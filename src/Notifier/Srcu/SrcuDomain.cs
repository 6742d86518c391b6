namespace Hypervisor.Notifier.Srcu;

/// <summary>
/// A sleepable read-copy-update domain (the role of Linux's SRCU in mm/mmu_notifier.c). Readers never
/// block writers and may themselves block inside the section; <see cref="Synchronize"/> waits until every
/// section that began before it has ended.
/// </summary>
/// <remarks>
/// Readers count themselves in one of two epochs per stripe (one padded cache line per stripe, chosen by
/// the current processor, so readers on different cores never share a line). A writer flips the active
/// epoch and waits for the old one to drain. A reader that read the epoch, then saw it flip before its
/// increment became visible, backs out and retries, so no reader is ever counted only in an epoch a writer
/// has already drained. Invariant: after <see cref="Synchronize"/> flips from epoch e, only retrying
/// readers touch e, and every counter of e returns to zero. Sections nest; Synchronize must not be called
/// from inside a section of the same domain (it would wait for itself).
/// </remarks>
public sealed class SrcuDomain
{
    // 16 longs = 128 bytes per stripe: one line plus the adjacent-line prefetch pair.
    private const int Stride = 16;

    private readonly long[] _counters;
    private readonly int _stripeMask;
    private readonly object _writerLock = new();
    private int _epoch;
    private long _gracePeriods;
    private int _pendingCallbacks;
    private volatile bool _waitingForReaders;

    /// <summary>Creates a domain with one stripe per processor (rounded up to a power of two).</summary>
    public SrcuDomain()
    {
        var stripes = (int)BitOperations.RoundUpToPowerOf2((uint)Math.Max(1, Environment.ProcessorCount));
        _stripeMask = stripes - 1;
        _counters = GC.AllocateArray<long>((stripes * Stride) + Stride, pinned: true);
    }

    /// <summary>Number of completed grace periods.</summary>
    public long GracePeriods => Volatile.Read(ref _gracePeriods);

    /// <summary>The active epoch (0 or 1); it flips at the start of every grace period. For tests.</summary>
    internal int Epoch => Volatile.Read(ref _epoch);

    /// <summary>
    /// True while a <see cref="Synchronize"/> is waiting for a read-side section that began before it (not while it only
    /// flips the epoch and finds the old one already empty). For demonstrations that must see a writer blocked.
    /// </summary>
    public bool IsWaitingForReaders => _waitingForReaders;

    /// <summary>Callbacks queued with <see cref="CallAfterGracePeriod"/> that have not run yet.</summary>
    public int PendingCallbacks => Volatile.Read(ref _pendingCallbacks);

    /// <summary>Opens a read-side section. Never blocks.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public SrcuReadToken ReadLock()
    {
        var stripeBase = (Thread.GetCurrentProcessorId() & _stripeMask) * Stride;
        while (true)
        {
            var epoch = Volatile.Read(ref _epoch);
            var slot = stripeBase + epoch;
            Interlocked.Increment(ref _counters[slot]);
            if (Volatile.Read(ref _epoch) == epoch)
            {
                return new SrcuReadToken(slot);
            }

            // A writer flipped between our read of the epoch and our increment: back out, retry in the new epoch.
            Interlocked.Decrement(ref _counters[slot]);
        }
    }

    /// <summary>Closes the section opened by <see cref="ReadLock"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void ReadUnlock(SrcuReadToken token) => Interlocked.Decrement(ref _counters[token.Slot]);

    /// <summary>Waits until every read-side section that began before this call has ended.</summary>
    public void Synchronize()
    {
        lock (_writerLock)
        {
            var old = _epoch;
            Interlocked.Exchange(ref _epoch, old ^ 1);
            var spinner = default(SpinWait);
            while (!IsDrained(old))
            {
                _waitingForReaders = true;
                spinner.SpinOnce(sleep1Threshold: 64);
            }

            _waitingForReaders = false;
            Interlocked.Increment(ref _gracePeriods);
        }
    }

    /// <summary>
    /// Runs <paramref name="callback"/> on a background thread after a grace period (Linux's
    /// <c>call_srcu</c>). <see cref="Barrier"/> waits for every callback queued so far.
    /// </summary>
    public void CallAfterGracePeriod(Action callback)
    {
        ArgumentNullException.ThrowIfNull(callback);
        Interlocked.Increment(ref _pendingCallbacks);
        ThreadPool.UnsafeQueueUserWorkItem(
            static state =>
            {
                var (domain, action) = state;
                try
                {
                    domain.Synchronize();
                    action();
                }
                finally
                {
                    Interlocked.Decrement(ref domain._pendingCallbacks);
                }
            },
            (this, callback),
            preferLocal: false);
    }

    /// <summary>Waits for a grace period and for every callback queued before this call (Linux's <c>srcu_barrier</c>).</summary>
    public void Barrier()
    {
        Synchronize();
        var spinner = default(SpinWait);
        while (Volatile.Read(ref _pendingCallbacks) != 0)
        {
            spinner.SpinOnce(sleep1Threshold: 16);
        }
    }

    private bool IsDrained(int epoch)
    {
        long sum = 0;
        for (var i = epoch; i < _counters.Length - Stride; i += Stride)
        {
            sum += Volatile.Read(ref _counters[i]);
        }

        return sum == 0;
    }
}
