namespace Hypervisor.HostMm.Frames;

/// <summary>
/// One NUMA node's free frames: an intrusive LIFO list threaded through <see cref="FrameInfo.LruNext"/>
/// of the shared frame table, plus the node's counters.
/// </summary>
/// <remarks>
/// <c>_lock</c> is a leaf lock: nothing is taken while it is held (no other node's lock, no callback, no
/// allocation), so it may be taken under any other lock. It guards <c>_head</c>, every free frame's
/// <see cref="FrameInfo.LruNext"/>, the <see cref="FrameFlags.Free"/> bit of this node's frames, and the
/// counters written under it. Invariant under the lock: <c>_freeCount</c> = length of the list = number
/// of this node's frames with <see cref="FrameFlags.Free"/>.
/// </remarks>
internal sealed class NodeFreeList
{
    private readonly Lock _lock = new();
    private readonly FrameInfo[] _frames;
    private uint _head;
    private int _freeCount;
    private long _allocations;
    private long _frees;
    private long _fallbackAllocations;
    private long _zeroedFrames;
    private long _useAfterFreeDetections;

    /// <summary>Links frames <c>[firstPfn, firstPfn + frameCount)</c> of <paramref name="frames"/> as node <paramref name="id"/>'s free list, lowest pfn first.</summary>
    public NodeFreeList(int id, FrameInfo[] frames, uint firstPfn, uint frameCount)
    {
        Id = id;
        _frames = frames;
        FirstPfn = new Pfn(firstPfn);
        FrameCount = frameCount;
        var end = firstPfn + frameCount;
        for (var i = firstPfn; i < end; i++)
        {
            frames[i].InitializeFree((ushort)id, i + 1 < end ? i + 1 : FrameInfo.NoFrame);
        }

        _head = firstPfn;
        _freeCount = (int)frameCount;
    }

    /// <summary>The node number.</summary>
    public int Id { get; }

    /// <summary>The node's first frame.</summary>
    public Pfn FirstPfn { get; }

    /// <summary>The node's number of frames.</summary>
    public long FrameCount { get; }

    /// <summary>Frames on the list now (a racy read unless quiescent).</summary>
    public int FreeCount => Volatile.Read(ref _freeCount);

    /// <summary>Frames handed out from this node.</summary>
    public long Allocations => Volatile.Read(ref _allocations);

    /// <summary>Frames returned to this node.</summary>
    public long Frees => Volatile.Read(ref _frees);

    /// <summary>Allocations this node satisfied for another preferred node.</summary>
    public long FallbackAllocations => Volatile.Read(ref _fallbackAllocations);

    /// <summary>Frames of this node cleared on allocation.</summary>
    public long ZeroedFrames => Volatile.Read(ref _zeroedFrames);

    /// <summary>Frames of this node found written to while free.</summary>
    public long UseAfterFreeDetections => Volatile.Read(ref _useAfterFreeDetections);

    /// <summary>A snapshot as the public node type.</summary>
    public NumaNode Snapshot() => new(Id, FirstPfn, FrameCount, FreeCount);

    /// <summary>
    /// Takes the most recently freed frame off the list and clears its <see cref="FrameFlags.Free"/> bit
    /// (other bits, notably <see cref="FrameFlags.Poisoned"/>, stay for the caller to check); false when
    /// the list is empty. The frame's refcount stays 0 until the caller publishes it.
    /// </summary>
    public bool TryPop(bool fallback, out uint index, out FrameFlags flagsWhileFree)
    {
        using (_lock.EnterScope())
        {
            index = _head;
            if (index == FrameInfo.NoFrame)
            {
                flagsWhileFree = FrameFlags.None;
                return false;
            }

            ref var frame = ref _frames[index];
            _head = frame.LruNext;
            frame.LruNext = FrameInfo.NoFrame;
            flagsWhileFree = frame.Flags;
            frame.WriteFlags(flagsWhileFree & ~FrameFlags.Free);
            _freeCount--;
            _allocations++;
            if (fallback)
            {
                _fallbackAllocations++;
            }

            return true;
        }
    }

    /// <summary>Puts frame <paramref name="index"/> (refcount 0, ours alone) on the list with flags <paramref name="freeFlags"/>.</summary>
    public void Push(uint index, FrameFlags freeFlags)
    {
        using (_lock.EnterScope())
        {
            ref var frame = ref _frames[index];
            frame.LruNext = _head;
            frame.WriteFlags(freeFlags);
            _head = index;
            _freeCount++;
            _frees++;
        }
    }

    /// <summary>
    /// Returns a chain of frames, already linked through <c>LruNext</c> from <paramref name="first"/> to
    /// <paramref name="last"/> with their free flags written, under one lock acquisition.
    /// </summary>
    public void PushChain(uint first, uint last, int count)
    {
        using (_lock.EnterScope())
        {
            _frames[last].LruNext = _head;
            _head = first;
            _freeCount += count;
            _frees += count;
        }
    }

    /// <summary>Counts a frame cleared on allocation.</summary>
    public void CountZeroed() => Interlocked.Increment(ref _zeroedFrames);

    /// <summary>Counts a freed frame found written to.</summary>
    public void CountUseAfterFree() => Interlocked.Increment(ref _useAfterFreeDetections);
}
