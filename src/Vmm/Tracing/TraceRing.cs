namespace Hypervisor.Vmm.Tracing;

/// <summary>
/// A fixed number of <see cref="TraceEvent"/> slots that any number of threads record into without a lock: each event
/// takes the next sequence number (one interlocked increment) and lands in slot <c>sequence % capacity</c>, so once
/// the ring wraps the oldest events are overwritten. <see cref="Snapshot"/> returns the newest events in sequence order
/// (hence each thread's events in the order it recorded them) and how many were dropped.
/// </summary>
/// <remarks>
/// <para>
/// The slots are allocated in chunks of <see cref="ChunkSize"/> as the ring first reaches them (an event is 72 bytes
/// and its stamp 8, so the default million-event ring would otherwise take 80 MB up front, while a short run records a
/// few thousand events): a chunk is allocated under a lock, once, and published with a volatile write of its slots
/// after its stamps; recording into an allocated chunk takes no lock.
/// </para>
/// <para>
/// Invariant: a slot's stamp is 0 while the slot is empty, <see cref="Busy"/> while one writer owns it, else the
/// sequence number plus one of the event whose write completed there. A writer owns a slot only after a
/// compare-and-swap from a completed stamp, so two writers never mix their fields; a writer lapped by a newer event
/// for its slot drops its own (it is older than the window anyway). A reader trusts a slot only if the stamp it expects
/// there is the same before and after the copy.
/// </para>
/// </remarks>
public sealed class TraceRing
{
    /// <summary>The smallest capacity.</summary>
    public const int MinCapacity = 1;

    /// <summary>Events per chunk by default (about 1.3 MB with their stamps).</summary>
    public const int DefaultChunkSize = 16_384;

    private const long Busy = -1;

    private readonly TraceEvent[]?[] _slots;
    private readonly long[]?[] _stamps;
    private readonly Lock _allocation = new();
    private long _next;

    /// <summary>Creates a ring of <paramref name="capacity"/> events, allocated <paramref name="chunkSize"/> at a time as they are first used.</summary>
    public TraceRing(int capacity, int chunkSize = DefaultChunkSize)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, MinCapacity);
        ArgumentOutOfRangeException.ThrowIfLessThan(chunkSize, 1);
        Capacity = capacity;
        ChunkSize = Math.Min(chunkSize, capacity);
        var chunks = (capacity + ChunkSize - 1) / ChunkSize;
        _slots = new TraceEvent[chunks][];
        _stamps = new long[chunks][];
    }

    /// <summary>How many events the ring holds.</summary>
    public int Capacity { get; }

    /// <summary>Slots per chunk.</summary>
    public int ChunkSize { get; }

    /// <summary>How many events were recorded so far (kept or dropped).</summary>
    public long Recorded => Interlocked.Read(ref _next);

    /// <summary>Slots allocated so far (a multiple of <see cref="ChunkSize"/>, but for a shorter last chunk).</summary>
    public long AllocatedSlots
    {
        get
        {
            long slots = 0;
            for (var c = 0; c < _slots.Length; c++)
            {
                slots += Volatile.Read(ref _slots[c])?.Length ?? 0;
            }

            return slots;
        }
    }

    /// <summary>Records <paramref name="item"/>, overwriting the oldest event once the ring is full. Thread-safe; lock-free once its chunk exists.</summary>
    public void Record(in TraceEvent item)
    {
        var sequence = Interlocked.Increment(ref _next) - 1;
        var index = (int)(sequence % Capacity);
        var chunk = index / ChunkSize;
        var offset = index - (chunk * ChunkSize);
        var slots = Volatile.Read(ref _slots[chunk]) ?? Allocate(chunk);
        ref var stamp = ref _stamps[chunk]![offset];
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

        slots[offset] = item;
        Volatile.Write(ref stamp, sequence + 1);
    }

    /// <summary>
    /// The events still in the ring, oldest first (sequence order). Meant for when recording has stopped; while threads
    /// still record, a slot being rewritten is left out and counted as dropped.
    /// </summary>
    public TraceSnapshot Snapshot()
    {
        var total = Interlocked.Read(ref _next);
        var first = Math.Max(0, total - Capacity);
        var events = new List<TraceEvent>((int)(total - first));
        for (var sequence = first; sequence < total; sequence++)
        {
            var index = (int)(sequence % Capacity);
            var chunk = index / ChunkSize;
            var offset = index - (chunk * ChunkSize);
            if (Volatile.Read(ref _slots[chunk]) is not { } slots)
            {
                continue;
            }

            var stamps = _stamps[chunk]!;
            if (Volatile.Read(ref stamps[offset]) != sequence + 1)
            {
                continue;
            }

            var copy = slots[offset];
            Interlocked.MemoryBarrier();
            if (Volatile.Read(ref stamps[offset]) == sequence + 1)
            {
                events.Add(copy);
            }
        }

        return new TraceSnapshot(events, total, total - events.Count, Capacity);
    }

    // Stamps first, slots last: a thread that sees the slots also sees the stamps.
    private TraceEvent[] Allocate(int chunk)
    {
        lock (_allocation)
        {
            if (_slots[chunk] is { } existing)
            {
                return existing;
            }

            var length = Math.Min(ChunkSize, Capacity - (chunk * ChunkSize));
            _stamps[chunk] = new long[length];
            var slots = new TraceEvent[length];
            Volatile.Write(ref _slots[chunk], slots);
            return slots;
        }
    }
}
