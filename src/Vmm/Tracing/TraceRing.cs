namespace Hypervisor.Vmm.Tracing;

/// <summary>
/// A fixed number of <see cref="TraceEvent"/> slots that any number of threads record into without a lock: each event
/// takes the next sequence number (one interlocked increment) and lands in slot <c>sequence % capacity</c>, so once
/// the ring wraps the oldest events are overwritten. <see cref="Snapshot"/> returns the newest events in sequence order
/// (hence each thread's events in the order it recorded them) and how many were dropped.
/// </summary>
/// <remarks>
/// Invariant: <c>_stamps[i]</c> is 0 while slot i is empty, <see cref="Busy"/> while one writer owns it, else the
/// sequence number plus one of the event whose write completed there. A writer owns a slot only after a
/// compare-and-swap from a completed stamp, so two writers never mix their fields; a writer lapped by a newer event
/// for its slot drops its own (it is older than the window anyway). A reader trusts a slot only if the stamp it expects
/// there is the same before and after the copy.
/// </remarks>
public sealed class TraceRing
{
    /// <summary>The smallest capacity.</summary>
    public const int MinCapacity = 1;

    private const long Busy = -1;

    private readonly TraceEvent[] _slots;
    private readonly long[] _stamps;
    private long _next;

    /// <summary>Creates a ring of <paramref name="capacity"/> events.</summary>
    public TraceRing(int capacity)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, MinCapacity);
        _slots = new TraceEvent[capacity];
        _stamps = new long[capacity];
    }

    /// <summary>How many events the ring holds.</summary>
    public int Capacity => _slots.Length;

    /// <summary>How many events were recorded so far (kept or dropped).</summary>
    public long Recorded => Interlocked.Read(ref _next);

    /// <summary>Records <paramref name="item"/>, overwriting the oldest event once the ring is full. Thread-safe, lock-free.</summary>
    public void Record(in TraceEvent item)
    {
        var sequence = Interlocked.Increment(ref _next) - 1;
        var index = (int)(sequence % _slots.Length);
        ref var stamp = ref _stamps[index];
        var spinner = default(SpinWait);
        while (true)
        {
            var seen = Volatile.Read(ref stamp);
            if (seen == Busy)
            {
                spinner.SpinOnce();
                continue;
            }

            if (seen > sequence + 1)
            {
                return;
            }

            if (Interlocked.CompareExchange(ref stamp, Busy, seen) == seen)
            {
                break;
            }
        }

        _slots[index] = item;
        Volatile.Write(ref stamp, sequence + 1);
    }

    /// <summary>
    /// The events still in the ring, oldest first (sequence order). Meant for when recording has stopped; while threads
    /// still record, a slot being rewritten is left out and counted as dropped.
    /// </summary>
    public TraceSnapshot Snapshot()
    {
        var total = Interlocked.Read(ref _next);
        var first = Math.Max(0, total - _slots.Length);
        var events = new List<TraceEvent>((int)(total - first));
        for (var sequence = first; sequence < total; sequence++)
        {
            var index = (int)(sequence % _slots.Length);
            if (Volatile.Read(ref _stamps[index]) != sequence + 1)
            {
                continue;
            }

            var copy = _slots[index];
            Interlocked.MemoryBarrier();
            if (Volatile.Read(ref _stamps[index]) == sequence + 1)
            {
                events.Add(copy);
            }
        }

        return new TraceSnapshot(events, total, total - events.Count, _slots.Length);
    }
}
