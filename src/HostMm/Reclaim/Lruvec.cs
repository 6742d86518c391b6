using Hypervisor.HostMm.Frames;

namespace Hypervisor.HostMm.Reclaim;

/// <summary>
/// The LRU lists of one (NUMA node, memory cgroup) pair (Linux's <c>lruvec</c>): an inactive and an active list of
/// anonymous frames, doubly linked through the frames' own <see cref="FrameInfo.LruPrev"/>/<see cref="FrameInfo.LruNext"/>
/// indices — no allocation per page — with the head as the most recently added end and the tail as the next to scan.
/// </summary>
/// <remarks>
/// <para>Lock: <see cref="Lock"/> (the <c>lru_lock</c>) guards both lists, their counts and the links and the
/// <see cref="FrameFlags.Lru"/>/<see cref="FrameFlags.Active"/> bits of the frames on them. It is a leaf: taken
/// under a page lock or a page-table lock is fine, and nothing is taken under it except frame flag and refcount
/// atomics.</para>
/// <para>Invariant: a frame is on a list of this lruvec exactly when it has <see cref="FrameFlags.Lru"/>, its node is
/// <see cref="Node"/> and its charge is <see cref="Cgroup"/>; <see cref="FrameFlags.Active"/> says which list.</para>
/// </remarks>
internal sealed class Lruvec
{
    private readonly uint[] _head = [FrameInfo.NoFrame, FrameInfo.NoFrame];
    private readonly uint[] _tail = [FrameInfo.NoFrame, FrameInfo.NoFrame];
    private readonly long[] _count = new long[2];
    private long _nonresidentAge;

    public Lruvec(int index, int node, MemoryCgroup cgroup)
    {
        Index = index;
        Node = node;
        Cgroup = cgroup;
    }

    /// <summary>The lock that guards the lists (the <c>lru_lock</c>).</summary>
    public Lock Lock { get; } = new();

    /// <summary>The lruvec's position in the reclaimer's table (what a shadow entry records).</summary>
    public int Index { get; }

    /// <summary>The NUMA node of every frame on the lists.</summary>
    public int Node { get; }

    /// <summary>The cgroup every frame on the lists is charged to.</summary>
    public MemoryCgroup Cgroup { get; }

    /// <summary>Frames on the inactive list (a racy read outside the lock).</summary>
    public long InactiveCount => Volatile.Read(ref _count[(int)LruList.Inactive]);

    /// <summary>Frames on the active list (a racy read outside the lock).</summary>
    public long ActiveCount => Volatile.Read(ref _count[(int)LruList.Active]);

    /// <summary>Frames on both lists.</summary>
    public long Count => InactiveCount + ActiveCount;

    /// <summary>
    /// The workingset clock (Linux's <c>nonresident_age</c>): advanced by every eviction and activation, so the
    /// distance a refaulted page travelled while out of memory is the clock now minus the clock in its shadow entry.
    /// </summary>
    public long NonresidentAge => Volatile.Read(ref _nonresidentAge);

    /// <summary>Advances the workingset clock and returns its new value.</summary>
    public long AgeNonresident() => Interlocked.Increment(ref _nonresidentAge);

    /// <summary>
    /// True when the inactive list is small against the active one (Linux's <c>inactive_is_low</c>):
    /// inactive × ratio &lt; active, the ratio being √(10 × GiB of the lists), at least 1.
    /// </summary>
    public bool InactiveIsLow()
    {
        var inactive = InactiveCount;
        var active = ActiveCount;
        var gib = (inactive + active) >> (30 - (int)Paging.PageShift);
        var ratio = gib == 0 ? 1 : (long)Math.Sqrt(10.0 * gib);
        return inactive * ratio < active;
    }

    /// <summary>Puts a frame that is on no list at the head (or tail) of <paramref name="list"/>. Hold <see cref="Lock"/>.</summary>
    public void AddLocked(Span<FrameInfo> frames, uint index, LruList list, bool atTail = false)
    {
        ref var frame = ref frames[(int)index];
        var l = (int)list;
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

        if (list == LruList.Active)
        {
            frame.SetFlags(FrameFlags.Lru | FrameFlags.Active);
        }
        else
        {
            frame.ClearFlags(FrameFlags.Active);
            frame.SetFlags(FrameFlags.Lru);
        }

        _count[l]++;
    }

    /// <summary>Takes a frame off whichever list holds it and clears <see cref="FrameFlags.Lru"/>. Hold <see cref="Lock"/>.</summary>
    public void RemoveLocked(Span<FrameInfo> frames, uint index)
    {
        ref var frame = ref frames[(int)index];
        var l = frame.Has(FrameFlags.Active) ? (int)LruList.Active : (int)LruList.Inactive;
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
        frame.ClearFlags(FrameFlags.Lru | FrameFlags.Active);
        _count[l]--;
    }

    /// <summary>The frame at the tail of <paramref name="list"/> (the next to scan), or <see cref="FrameInfo.NoFrame"/>. Hold <see cref="Lock"/>.</summary>
    public uint TailLocked(LruList list) => _tail[(int)list];

    /// <summary>Checks the lists' links, flags and counts; one line per problem (audits, under <see cref="Lock"/>).</summary>
    public void AuditLocked(Span<FrameInfo> frames, List<string> problems, HashSet<uint> seen)
    {
        for (var l = 0; l < 2; l++)
        {
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

                if (!frame.Has(FrameFlags.Lru) || frame.Has(FrameFlags.Active) != (l == (int)LruList.Active))
                {
                    problems.Add($"lruvec {Index}: frame {index} on the {(LruList)l} list has flags {frame.Flags}");
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
                problems.Add($"lruvec {Index}: the {(LruList)l} list ends at {prev} but its tail is {_tail[l]}");
            }

            if (count != _count[l])
            {
                problems.Add($"lruvec {Index}: the {(LruList)l} list holds {count} frames but counts {_count[l]}");
            }
        }
    }
}
