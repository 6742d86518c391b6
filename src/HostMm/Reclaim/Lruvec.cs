using Hypervisor.HostMm.Frames;

namespace Hypervisor.HostMm.Reclaim;

/// <summary>
/// The LRU lists of one (NUMA node, memory cgroup) pair (Linux's <c>lruvec</c>), doubly linked through the frames' own
/// <see cref="FrameInfo.LruPrev"/>/<see cref="FrameInfo.LruNext"/> indices — no allocation per page — with the head as
/// the most recently added end and the tail as the next to scan. The classic policy uses an inactive and an active
/// list of anonymous frames; the multi-gen policy (<see cref="LruPolicy.MultiGen"/>) uses up to
/// <see cref="MaxGenerations"/> generation lists between <see cref="MinSeq"/> (oldest, evicted first) and
/// <see cref="MaxSeq"/> (youngest), generation <c>seq</c> living on list <c>seq % 4</c> (Linux's <c>lru_gen_folio</c>).
/// </summary>
/// <remarks>
/// <para>Lock: <see cref="Lock"/> (the <c>lru_lock</c>) guards every list, their counts, the sequence numbers, the links
/// and the <see cref="FrameFlags.Lru"/>/<see cref="FrameFlags.Active"/> bits and generation field of the frames on
/// them. It is a leaf: taken under a page lock or a page-table lock is fine, and nothing is taken under it except frame
/// flag and refcount atomics. <see cref="AgingLock"/> serialises the multi-gen aging of this lruvec; it is taken before
/// any mmap lock (only ever tried), page-table lock or secondary-MMU lock, and never under <see cref="Lock"/>.</para>
/// <para>Invariants: a frame is on a list of this lruvec exactly when it has <see cref="FrameFlags.Lru"/>, its node is
/// <see cref="Node"/> and its charge is <see cref="Cgroup"/>. A frame on a generation list has generation field
/// (list index + 1) and no <see cref="FrameFlags.Active"/>; a frame on a classic list has generation field 0 and
/// <see cref="FrameFlags.Active"/> says which list. <see cref="MinGenerations"/> ≤ MaxSeq − MinSeq + 1 ≤
/// <see cref="MaxGenerations"/>, and the lists of sequence numbers outside [MinSeq, MaxSeq] are empty.</para>
/// </remarks>
internal sealed class Lruvec
{
    /// <summary>Most generations a lruvec holds at once (Linux's <c>MAX_NR_GENS</c>).</summary>
    public const int MaxGenerations = 4;

    /// <summary>Fewest generations a lruvec holds (Linux's <c>MIN_NR_GENS</c>): the two youngest are never evicted from.</summary>
    public const int MinGenerations = 2;

    // List slots: 0 inactive, 1 active (classic), 2 + (seq % 4) for the multi-gen generations.
    private const int GenerationSlot = 2;
    private const int Slots = GenerationSlot + MaxGenerations;

    private readonly uint[] _head = [.. Enumerable.Repeat(FrameInfo.NoFrame, Slots)];
    private readonly uint[] _tail = [.. Enumerable.Repeat(FrameInfo.NoFrame, Slots)];
    private readonly long[] _count = new long[Slots];
    private long _nonresidentAge;
    private long _minSeq;
    private long _maxSeq = MinGenerations - 1;

    public Lruvec(int index, int node, MemoryCgroup cgroup)
    {
        Index = index;
        Node = node;
        Cgroup = cgroup;
    }

    /// <summary>The lock that guards the lists (the <c>lru_lock</c>).</summary>
    public Lock Lock { get; } = new();

    /// <summary>The multi-gen LRU's per-tier refault counters and controller for this lruvec.</summary>
    public RefaultController Tiers { get; } = new();

    /// <summary>Serialises multi-gen aging of this lruvec (one page-table walk per new generation).</summary>
    public Lock AgingLock { get; } = new();

    /// <summary>The lruvec's position in the reclaimer's table (what a shadow entry records).</summary>
    public int Index { get; }

    /// <summary>The NUMA node of every frame on the lists.</summary>
    public int Node { get; }

    /// <summary>The cgroup every frame on the lists is charged to.</summary>
    public MemoryCgroup Cgroup { get; }

    /// <summary>The oldest generation's sequence number (Linux's <c>min_seq</c>; a racy read outside the lock).</summary>
    public long MinSeq => Volatile.Read(ref _minSeq);

    /// <summary>The youngest generation's sequence number (Linux's <c>max_seq</c>; a racy read outside the lock).</summary>
    public long MaxSeq => Volatile.Read(ref _maxSeq);

    /// <summary>Generations between <see cref="MinSeq"/> and <see cref="MaxSeq"/> inclusive.</summary>
    public int Generations => (int)(MaxSeq - MinSeq + 1);

    /// <summary>
    /// Inactive frames (a racy read outside the lock): the classic inactive list plus, under the multi-gen policy, every
    /// generation but the two youngest (as Linux reports <c>Inactive(anon)</c> with MGLRU on).
    /// </summary>
    public long InactiveCount => Count - ActiveCount;

    /// <summary>Active frames (a racy read): the classic active list plus the two youngest generations.</summary>
    public long ActiveCount
    {
        get
        {
            var max = MaxSeq;
            return Volatile.Read(ref _count[(int)LruList.Active]) + GenerationCount(max) + GenerationCount(max - 1);
        }
    }

    /// <summary>Frames on every list.</summary>
    public long Count
    {
        get
        {
            long total = 0;
            for (var slot = 0; slot < Slots; slot++)
            {
                total += Volatile.Read(ref _count[slot]);
            }

            return total;
        }
    }

    /// <summary>Frames on the classic inactive list only (a racy read).</summary>
    public long ClassicInactiveCount => Volatile.Read(ref _count[(int)LruList.Inactive]);

    /// <summary>Frames on the classic active list only (a racy read).</summary>
    public long ClassicActiveCount => Volatile.Read(ref _count[(int)LruList.Active]);

    /// <summary>
    /// The workingset clock (Linux's <c>nonresident_age</c>): advanced by every eviction and activation, so the
    /// distance a refaulted page travelled while out of memory is the clock now minus the clock in its shadow entry.
    /// </summary>
    public long NonresidentAge => Volatile.Read(ref _nonresidentAge);

    /// <summary>Frames in generation <paramref name="seq"/> (0 outside the window; a racy read).</summary>
    public long GenerationCount(long seq) =>
        seq < MinSeq || seq > MaxSeq || seq < 0 ? 0 : Volatile.Read(ref _count[SlotOf(seq)]);

    /// <summary>Advances the workingset clock and returns its new value.</summary>
    public long AgeNonresident() => Interlocked.Increment(ref _nonresidentAge);

    /// <summary>
    /// True when the classic inactive list is small against the active one (Linux's <c>inactive_is_low</c>):
    /// inactive × ratio &lt; active, the ratio being √(10 × GiB of the lists), at least 1.
    /// </summary>
    public bool InactiveIsLow()
    {
        var inactive = ClassicInactiveCount;
        var active = ClassicActiveCount;
        var gib = (inactive + active) >> (30 - (int)Paging.PageShift);
        var ratio = gib == 0 ? 1 : (long)Math.Sqrt(10.0 * gib);
        return inactive * ratio < active;
    }

    /// <summary>Puts a frame that is on no list at the head (or tail) of classic list <paramref name="list"/>. Hold <see cref="Lock"/>.</summary>
    public void AddLocked(Span<FrameInfo> frames, uint index, LruList list, bool atTail = false)
    {
        ref var frame = ref frames[(int)index];
        Link(frames, index, (int)list, atTail);
        frame.SetGeneration(0);
        if (list == LruList.Active)
        {
            frame.SetFlags(FrameFlags.Lru | FrameFlags.Active);
        }
        else
        {
            frame.ClearFlags(FrameFlags.Active);
            frame.SetFlags(FrameFlags.Lru);
        }
    }

    /// <summary>
    /// Puts a frame that is on no list at the head (or tail) of generation <paramref name="seq"/>, which must lie in
    /// [<see cref="MinSeq"/>, <see cref="MaxSeq"/>]. Hold <see cref="Lock"/>.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="seq"/> is outside the window.</exception>
    public void AddToGenerationLocked(Span<FrameInfo> frames, uint index, long seq, bool atTail = false)
    {
        if (seq < _minSeq || seq > _maxSeq)
        {
            throw new ArgumentOutOfRangeException(nameof(seq), seq, $"lruvec {Index}: generation {seq} is outside the window [{_minSeq}, {_maxSeq}]");
        }

        ref var frame = ref frames[(int)index];
        var slot = SlotOf(seq);
        Link(frames, index, slot, atTail);
        frame.ClearFlags(FrameFlags.Active);
        frame.SetGeneration(slot - GenerationSlot + 1);
        frame.SetFlags(FrameFlags.Lru);
    }

    /// <summary>
    /// Moves a frame on a generation list of this lruvec to the head of the youngest generation (Linux's
    /// <c>folio_update_gen</c> plus the move <c>sort_folio</c> makes). False, and nothing changes, when the frame is on no
    /// generation list here or already in the youngest. Hold <see cref="Lock"/>.
    /// </summary>
    public bool PromoteLocked(Span<FrameInfo> frames, uint index)
    {
        ref var frame = ref frames[(int)index];
        var generation = frame.Generation;
        if (!frame.Has(FrameFlags.Lru) || generation == 0 || generation - 1 == (int)(_maxSeq % MaxGenerations))
        {
            return false;
        }

        Unlink(frames, index, GenerationSlot + generation - 1);
        AddToGenerationLocked(frames, index, _maxSeq);
        return true;
    }

    /// <summary>
    /// Opens a new youngest generation (Linux's <c>inc_max_seq</c>). With <see cref="MaxGenerations"/> already in use,
    /// the oldest is first dropped if empty, else folded into the next-oldest (its frames join that list's tail, so
    /// they stay the first to be evicted). Returns the new <see cref="MaxSeq"/>. Hold <see cref="Lock"/>.
    /// </summary>
    public long IncrementMaxSeqLocked(Span<FrameInfo> frames)
    {
        if (_maxSeq - _minSeq + 1 == MaxGenerations && !TryIncrementMinSeqLocked())
        {
            var oldest = SlotOf(_minSeq);
            var next = SlotOf(_minSeq + 1);
            var generation = next - GenerationSlot + 1;
            for (var index = _tail[oldest]; index != FrameInfo.NoFrame; index = _tail[oldest])
            {
                Unlink(frames, index, oldest);
                Link(frames, index, next, atTail: false);
                frames[(int)index].SetGeneration(generation);
            }

            Tiers.CarryOver();
            Volatile.Write(ref _minSeq, _minSeq + 1);
        }

        Volatile.Write(ref _maxSeq, _maxSeq + 1);
        return _maxSeq;
    }

    /// <summary>
    /// Drops the oldest generations while they are empty and more than <see cref="MinGenerations"/> remain (Linux's
    /// <c>try_to_inc_min_seq</c>), carrying the tiers' refault counts over into their averages. True when
    /// <see cref="MinSeq"/> advanced. Hold <see cref="Lock"/>.
    /// </summary>
    public bool TryIncrementMinSeqLocked()
    {
        var advanced = false;
        while (_maxSeq - _minSeq + 1 > MinGenerations && _count[SlotOf(_minSeq)] == 0)
        {
            Volatile.Write(ref _minSeq, _minSeq + 1);
            advanced = true;
        }

        if (advanced)
        {
            Tiers.CarryOver(); // once per retirement, as Linux's try_to_inc_min_seq carries over once for its whole advance
        }

        return advanced;
    }

    /// <summary>
    /// The frame at the tail of the oldest generation (the next to evict), or <see cref="FrameInfo.NoFrame"/> when it is
    /// empty. Hold <see cref="Lock"/>.
    /// </summary>
    public uint OldestTailLocked() => _tail[SlotOf(_minSeq)];

    /// <summary>
    /// The tail of generation <paramref name="seq"/> (its next frame to evict), or <see cref="FrameInfo.NoFrame"/> when it
    /// is empty or outside the window. Hold <see cref="Lock"/>.
    /// </summary>
    public uint GenerationTailLocked(long seq) => seq < _minSeq || seq > _maxSeq ? FrameInfo.NoFrame : _tail[SlotOf(seq)];

    /// <summary>Takes a frame off whichever list holds it and clears <see cref="FrameFlags.Lru"/> and its generation. Hold <see cref="Lock"/>.</summary>
    public void RemoveLocked(Span<FrameInfo> frames, uint index)
    {
        ref var frame = ref frames[(int)index];
        var generation = frame.Generation;
        var slot = generation != 0 ? GenerationSlot + generation - 1
            : frame.Has(FrameFlags.Active) ? (int)LruList.Active : (int)LruList.Inactive;
        Unlink(frames, index, slot);
        frame.SetGeneration(0);
        frame.ClearFlags(FrameFlags.Lru | FrameFlags.Active);
    }

    /// <summary>The frame at the tail of classic list <paramref name="list"/> (the next to scan), or <see cref="FrameInfo.NoFrame"/>. Hold <see cref="Lock"/>.</summary>
    public uint TailLocked(LruList list) => _tail[(int)list];

    /// <summary>Checks the lists' links, flags, generation fields, counts and the sequence window; one line per problem (audits, under <see cref="Lock"/>).</summary>
    public void AuditLocked(Span<FrameInfo> frames, List<string> problems, HashSet<uint> seen)
    {
        var generations = _maxSeq - _minSeq + 1;
        if (_minSeq < 0 || generations < MinGenerations || generations > MaxGenerations)
        {
            problems.Add($"lruvec {Index}: the generation window [{_minSeq}, {_maxSeq}] holds {generations} generations, not {MinGenerations} to {MaxGenerations}");
        }

        for (var l = 0; l < Slots; l++)
        {
            var name = ListName(l);
            var isGeneration = l >= GenerationSlot;
            if (isGeneration && _count[l] != 0 && !InWindow(l))
            {
                problems.Add($"lruvec {Index}: {name} holds {_count[l]} frames but no generation in [{_minSeq}, {_maxSeq}] uses it");
            }

            long count = 0;
            var prev = FrameInfo.NoFrame;
            for (var index = _head[l]; index != FrameInfo.NoFrame; index = frames[(int)index].LruNext)
            {
                ref var frame = ref frames[(int)index];
                if (!seen.Add(index))
                {
                    problems.Add($"lruvec {Index} ({Cgroup.Name}, node {Node}): frame {index} is on two LRU lists or twice on one");
                    break;
                }

                if (frame.LruPrev != prev)
                {
                    problems.Add($"lruvec {Index}: frame {index}'s prev link is {frame.LruPrev}, expected {prev}");
                }

                var expectedGeneration = isGeneration ? l - GenerationSlot + 1 : 0;
                if (!frame.Has(FrameFlags.Lru) || frame.Has(FrameFlags.Active) != (l == (int)LruList.Active))
                {
                    problems.Add($"lruvec {Index}: frame {index} on the {name} has flags {frame.Flags}");
                }

                if (frame.Generation != expectedGeneration)
                {
                    problems.Add($"lruvec {Index}: frame {index} on the {name} has generation field {frame.Generation}, expected {expectedGeneration}");
                }

                if (frame.Node != Node || frame.MemoryCgroupId != Cgroup.Id)
                {
                    problems.Add($"lruvec {Index}: frame {index} is of node {frame.Node}, cgroup {frame.MemoryCgroupId}, not node {Node}, cgroup {Cgroup.Id}");
                }

                prev = index;
                count++;
            }

            if (prev != _tail[l])
            {
                problems.Add($"lruvec {Index}: the {name} ends at {prev} but its tail is {_tail[l]}");
            }

            if (count != _count[l])
            {
                problems.Add($"lruvec {Index}: the {name} holds {count} frames but counts {_count[l]}");
            }
        }
    }

    private static int SlotOf(long seq) => GenerationSlot + (int)(seq % MaxGenerations);

    private static string ListName(int slot) => slot < GenerationSlot
        ? $"{(LruList)slot} list"
        : $"generation list {slot - GenerationSlot}";

    private bool InWindow(int slot)
    {
        for (var seq = _minSeq; seq <= _maxSeq && seq - _minSeq < MaxGenerations; seq++)
        {
            if (SlotOf(seq) == slot)
            {
                return true;
            }
        }

        return false;
    }

    private void Link(Span<FrameInfo> frames, uint index, int l, bool atTail)
    {
        ref var frame = ref frames[(int)index];
        if (atTail)
        {
            frame.LruNext = FrameInfo.NoFrame;
            frame.LruPrev = _tail[l];
            if (_tail[l] != FrameInfo.NoFrame)
            {
                frames[(int)_tail[l]].LruNext = index;
            }
            else
            {
                _head[l] = index;
            }

            _tail[l] = index;
        }
        else
        {
            frame.LruPrev = FrameInfo.NoFrame;
            frame.LruNext = _head[l];
            if (_head[l] != FrameInfo.NoFrame)
            {
                frames[(int)_head[l]].LruPrev = index;
            }
            else
            {
                _tail[l] = index;
            }

            _head[l] = index;
        }

        Volatile.Write(ref _count[l], _count[l] + 1);
    }

    private void Unlink(Span<FrameInfo> frames, uint index, int l)
    {
        ref var frame = ref frames[(int)index];
        var prev = frame.LruPrev;
        var next = frame.LruNext;
        if (prev != FrameInfo.NoFrame)
        {
            frames[(int)prev].LruNext = next;
        }
        else
        {
            _head[l] = next;
        }

        if (next != FrameInfo.NoFrame)
        {
            frames[(int)next].LruPrev = prev;
        }
        else
        {
            _tail[l] = prev;
        }

        frame.LruPrev = FrameInfo.NoFrame;
        frame.LruNext = FrameInfo.NoFrame;
        Volatile.Write(ref _count[l], _count[l] - 1);
    }
}
