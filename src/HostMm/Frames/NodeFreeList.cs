namespace Hypervisor.HostMm.Frames;

/// <summary>
/// One NUMA node's free frames: an intrusive LIFO list threaded through <see cref="FrameInfo.LruNext"/> and
/// <see cref="FrameInfo.LruPrev"/> of the shared frame table (doubly linked, so a whole 2 MiB block can be taken out of
/// the middle), a count of free frames per 2 MiB block, plus the node's counters.
/// </summary>
/// <remarks>
/// <c>_lock</c> is a leaf lock: nothing is taken while it is held (no other node's lock, no callback, no
/// allocation), so it may be taken under any other lock. It guards <c>_head</c>, every free frame's
/// <see cref="FrameInfo.LruNext"/>, the <see cref="FrameFlags.Free"/> bit of this node's frames, and the
/// counters written under it. Invariants under the lock: <c>_freeCount</c> = length of the list = number
/// of this node's frames with <see cref="FrameFlags.Free"/>; <c>_blockFree[b]</c> = number of them in the node's
/// 2 MiB block <c>b</c> (frames <c>[FirstPfn + 512 b, FirstPfn + 512 (b + 1))</c>).
/// </remarks>
internal sealed class NodeFreeList
{
    private readonly Lock _lock = new();
    private readonly FrameInfo[] _frames;
    private readonly int[] _blockFree;
    private uint _head;
    private int _freeCount;
    private int _blockCursor;
    private long _blockAllocations;
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
            frames[i].LruPrev = i == firstPfn ? FrameInfo.NoFrame : i - 1;
        }

        _head = firstPfn;
        _freeCount = (int)frameCount;
        _blockFree = new int[(frameCount + BlockFrames - 1) / BlockFrames];
        for (var b = 0; b < _blockFree.Length; b++)
        {
            _blockFree[b] = (int)Math.Min(BlockFrames, frameCount - ((uint)b * BlockFrames));
        }
    }

    /// <summary>Frames in a 2 MiB block (one PMD's worth).</summary>
    public const uint BlockFrames = 512;

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

    /// <summary>2 MiB blocks handed out whole (<see cref="TryPopBlock"/>).</summary>
    public long BlockAllocations => Volatile.Read(ref _blockAllocations);

    /// <summary>2 MiB blocks whose every frame is free now (a racy read unless quiescent).</summary>
    public int FreeBlocks
    {
        get
        {
            using (_lock.EnterScope())
            {
                return _blockFree.Count(free => free == BlockFrames);
            }
        }
    }

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
            if (_head != FrameInfo.NoFrame)
            {
                _frames[_head].LruPrev = FrameInfo.NoFrame;
            }

            frame.LruNext = FrameInfo.NoFrame;
            _blockFree[BlockOf(index)]--;
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
            frame.LruPrev = FrameInfo.NoFrame;
            if (_head != FrameInfo.NoFrame)
            {
                _frames[_head].LruPrev = index;
            }

            frame.WriteFlags(freeFlags);
            _head = index;
            _blockFree[BlockOf(index)]++;
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
            var previous = FrameInfo.NoFrame;
            for (var index = first; ; index = _frames[index].LruNext)
            {
                _frames[index].LruPrev = previous;
                _blockFree[BlockOf(index)]++;
                previous = index;
                if (index == last)
                {
                    break;
                }
            }

            _frames[last].LruNext = _head;
            if (_head != FrameInfo.NoFrame)
            {
                _frames[_head].LruPrev = last;
            }

            _head = first;
            _freeCount += count;
            _frees += count;
        }
    }

    /// <summary>
    /// Takes a whole free 2 MiB block off the list (an order-9 allocation: 512 physically contiguous frames whose first
    /// is 2 MiB-aligned), clearing each frame's <see cref="FrameFlags.Free"/> bit; writes each frame's flags while free
    /// into <paramref name="flagsWhileFree"/> (512 entries). False when no block is entirely free (the node is
    /// fragmented: there is no compaction).
    /// </summary>
    public bool TryPopBlock(out uint first, Span<FrameFlags> flagsWhileFree)
    {
        using (_lock.EnterScope())
        {
            for (var scanned = 0; scanned < _blockFree.Length; scanned++)
            {
                var block = (_blockCursor + scanned) % _blockFree.Length;
                if (_blockFree[block] != BlockFrames)
                {
                    continue;
                }

                first = (uint)FirstPfn.Value + ((uint)block * BlockFrames);
                for (var i = 0u; i < BlockFrames; i++)
                {
                    var index = first + i;
                    ref var frame = ref _frames[index];
                    if (frame.LruPrev == FrameInfo.NoFrame)
                    {
                        _head = frame.LruNext;
                    }
                    else
                    {
                        _frames[frame.LruPrev].LruNext = frame.LruNext;
                    }

                    if (frame.LruNext != FrameInfo.NoFrame)
                    {
                        _frames[frame.LruNext].LruPrev = frame.LruPrev;
                    }

                    frame.LruNext = FrameInfo.NoFrame;
                    frame.LruPrev = FrameInfo.NoFrame;
                    flagsWhileFree[(int)i] = frame.Flags;
                    frame.WriteFlags(frame.Flags & ~FrameFlags.Free);
                }

                _blockFree[block] = 0;
                _blockCursor = (block + 1) % _blockFree.Length;
                _freeCount -= (int)BlockFrames;
                _allocations += BlockFrames;
                _blockAllocations++;
                return true;
            }

            first = FrameInfo.NoFrame;
            return false;
        }
    }

    private int BlockOf(uint index) => (int)((index - (uint)FirstPfn.Value) / BlockFrames);

    /// <summary>Counts a frame cleared on allocation.</summary>
    public void CountZeroed() => Interlocked.Increment(ref _zeroedFrames);

    /// <summary>Counts a freed frame found written to.</summary>
    public void CountUseAfterFree() => Interlocked.Increment(ref _useAfterFreeDetections);
}
