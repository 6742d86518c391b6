using System.Collections.Immutable;

namespace Hypervisor.HostMm.Frames;

/// <summary>
/// Host RAM (the primary MMU's frames): one 2 MiB-aligned native arena of 4 KiB frames, pfn
/// <c>[0, TotalFrames)</c>, split evenly into NUMA nodes with their own free lists, and a struct table of
/// per-frame state (<see cref="FrameInfo"/>). No managed object exists per frame.
/// </summary>
/// <remarks>
/// <para>Lock order: each node's free-list lock is a <b>leaf</b> lock — taken last, nothing is taken
/// under it (not another node's lock, not the observer), so allocation and free may be called under any
/// host or guest lock (mmap lock → page lock → page-table lock → MMU lock → node free-list lock). At most
/// one node lock is held at a time.</para>
/// <para>Refcount, mapcount and flags are changed with atomics and need no lock. Refcount 0 means the
/// frame belongs to the allocator (free, being freed, or quarantined); the thread that drops the last
/// reference owns the frame until it is on the free list. <see cref="IFrameObserver.OnFrameFreed"/> runs
/// after that, with no allocator lock held.</para>
/// <para>The arena is never touched at construction (Linux overcommits, so untouched RAM costs nothing);
/// the frame table (40 bytes per frame) is initialised eagerly.</para>
/// </remarks>
public sealed class HostMemory : IDisposable
{
    /// <summary>Bytes in a frame, as an <c>int</c> for spans.</summary>
    public const int FrameSize = (int)Paging.PageSize;

    /// <summary>The byte freed frames are filled with in audit mode (SLUB's POISON_FREE).</summary>
    public const byte PoisonByte = 0x6B;

    /// <summary>
    /// Flags a frame must not carry when its last reference is dropped (Linux's
    /// PAGE_FLAGS_CHECK_AT_FREE): whoever set them must clear them first.
    /// </summary>
    public const FrameFlags FlagsForbiddenAtFree =
        FrameFlags.Lru | FrameFlags.Isolated | FrameFlags.Locked | FrameFlags.SwapCache |
        FrameFlags.Writeback | FrameFlags.Reserved;

    /// <summary>Flags only the allocator may set or clear.</summary>
    public const FrameFlags AllocatorOwnedFlags = FrameFlags.Free | FrameFlags.Poisoned;

    private const AllocationFlags KnownAllocationFlags = AllocationFlags.Zero | AllocationFlags.ExactNode;

    private readonly FrameInfo[] _frames;
    private readonly NodeFreeList[] _nodes;
    private readonly long _framesPerNode;
    private nint _arena;
    private IFrameObserver? _observer;
    private IFrameReleaseHook? _releaseHook;

    /// <summary>Reserves host RAM as <paramref name="options"/> describe (address space only; nothing is touched).</summary>
    /// <exception cref="InvalidHostMemoryOptionsException">An option breaks a rule.</exception>
    public unsafe HostMemory(HostMemoryOptions options) // unsafe: the arena is raw native memory.
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();

        TotalBytes = options.TotalBytes;
        TotalFrames = (long)(options.TotalBytes >> Paging.PageShift);
        AuditFreedFrames = options.AuditFreedFrames;
        _framesPerNode = TotalFrames / options.NodeCount;

        _frames = GC.AllocateUninitializedArray<FrameInfo>((int)TotalFrames);
        _nodes = new NodeFreeList[options.NodeCount];
        for (var node = 0; node < _nodes.Length; node++)
        {
            _nodes[node] = new NodeFreeList(node, _frames, (uint)(node * _framesPerNode), (uint)_framesPerNode);
        }

        _arena = (nint)NativeMemory.AlignedAlloc((nuint)TotalBytes, (nuint)Paging.LargePageSize);
    }

    /// <summary>Returns the arena if <see cref="Dispose"/> was never called.</summary>
    ~HostMemory() => ReleaseArena();

    /// <summary>Bytes of host RAM.</summary>
    public ulong TotalBytes { get; }

    /// <summary>Frames of host RAM; valid pfns are <c>[0, TotalFrames)</c>.</summary>
    public long TotalFrames { get; }

    /// <summary>Number of NUMA nodes.</summary>
    public int NodeCount => _nodes.Length;

    /// <summary>True when freed frames are poisoned and checked on reallocation.</summary>
    public bool AuditFreedFrames { get; }

    /// <summary>Free frames over all nodes (a racy sum unless quiescent).</summary>
    public long FreeFrames
    {
        get
        {
            long free = 0;
            foreach (var node in _nodes)
            {
                free += node.FreeCount;
            }

            return free;
        }
    }

    /// <summary>
    /// Told about every frame that returns to a free list (for ordering tests); null for none. Set it
    /// before the frames it should see are freed.
    /// </summary>
    public IFrameObserver? Observer
    {
        get => Volatile.Read(ref _observer);
        set => Volatile.Write(ref _observer, value);
    }

    /// <summary>
    /// Undoes LRU membership and cgroup charges when a frame's last reference goes (the host's reclaim sets it once,
    /// before any frame is put on an LRU or charged); null for none.
    /// </summary>
    public IFrameReleaseHook? ReleaseHook
    {
        get => Volatile.Read(ref _releaseHook);
        set => Volatile.Write(ref _releaseHook, value);
    }

    /// <summary>The frame table, indexed by pfn, for walkers inside the host MM (LRU, KSM, migration scans).</summary>
    internal Span<FrameInfo> FrameTable => _frames;

    /// <summary>A snapshot of node <paramref name="node"/>.</summary>
    public NumaNode GetNode(int node) => NodeList(node, nameof(node)).Snapshot();

    /// <summary>The node <paramref name="pfn"/> belongs to.</summary>
    public int NodeOf(Pfn pfn) => (int)(Index(pfn) / (ulong)_framesPerNode);

    /// <summary>The state of <paramref name="pfn"/>, by reference into the frame table.</summary>
    /// <exception cref="PfnOutOfRangeException"><paramref name="pfn"/> is outside host RAM.</exception>
    public ref FrameInfo Frame(Pfn pfn) => ref _frames[Index(pfn)];

    /// <summary>Allocates one frame: from <paramref name="preferredNode"/>, else (unless <see cref="AllocationFlags.ExactNode"/>) from the other nodes in ascending order.</summary>
    /// <returns>A frame with refcount 1, mapcount 0, no flags but <see cref="FrameFlags.Zeroed"/> when <see cref="AllocationFlags.Zero"/> cleared it.</returns>
    /// <exception cref="OutOfHostMemoryException">No node that may be used has a free frame.</exception>
    /// <exception cref="UseAfterFreeException">Audit mode: the frame taken was written to while free (it is quarantined).</exception>
    public Pfn Allocate(int preferredNode, AllocationFlags flags = AllocationFlags.None)
    {
        if (TryAllocate(preferredNode, flags, out var pfn))
        {
            return pfn;
        }

        throw new OutOfHostMemoryException(preferredNode, flags, FreeFramesPerNode());
    }

    /// <summary>As <see cref="Allocate"/>, but false instead of <see cref="OutOfHostMemoryException"/>.</summary>
    /// <exception cref="UseAfterFreeException">Audit mode: the frame taken was written to while free (it is quarantined).</exception>
    public bool TryAllocate(int preferredNode, AllocationFlags flags, out Pfn pfn)
    {
        var preferred = NodeList(preferredNode, nameof(preferredNode));
        if ((flags & ~KnownAllocationFlags) != 0)
        {
            throw new ArgumentOutOfRangeException(
                nameof(flags), flags, $"allocation flags {flags} contain unknown bits: only Zero and ExactNode exist");
        }

        uint index;
        FrameFlags flagsWhileFree;
        var source = preferred;
        if (!preferred.TryPop(fallback: false, out index, out flagsWhileFree))
        {
            var found = false;
            if ((flags & AllocationFlags.ExactNode) == 0)
            {
                foreach (var other in _nodes)
                {
                    if (other != preferred && other.TryPop(fallback: true, out index, out flagsWhileFree))
                    {
                        source = other;
                        found = true;
                        break;
                    }
                }
            }

            if (!found)
            {
                pfn = default;
                return false;
            }
        }

        pfn = new Pfn(index);
        ref var frame = ref _frames[index];
        var bytes = ArenaSpan(index);
        if ((flagsWhileFree & FrameFlags.Poisoned) != 0)
        {
            var corrupt = bytes.IndexOfAnyExcept(PoisonByte);
            if (corrupt >= 0)
            {
                // Quarantined: refcount 0, not on a list, never handed out or freed again.
                frame.WriteFlags(FrameFlags.Reserved | FrameFlags.Poisoned);
                source.CountUseAfterFree();
                throw new UseAfterFreeException(
                    pfn,
                    "the allocator",
                    corrupt,
                    $"use after free: {pfn} was written while free: byte at offset 0x{corrupt:x} is 0x{bytes[corrupt]:x2}, not the poison 0x{PoisonByte:x2}; the frame is quarantined (Reserved) and will not be reused");
            }
        }

        var handedOut = FrameFlags.None;
        if ((flags & AllocationFlags.Zero) != 0)
        {
            ZeroFrame(index);
            source.CountZeroed();
            handedOut = FrameFlags.Zeroed;
        }

        frame.ResetForAllocation(handedOut);
        return true;
    }

    /// <summary>
    /// Allocates 512 physically contiguous frames whose first is 2 MiB-aligned (an order-9 allocation, for a transparent
    /// huge page): from <paramref name="preferredNode"/>, else (unless <see cref="AllocationFlags.ExactNode"/>) from the
    /// other nodes in ascending order. Each frame is handed out as <see cref="TryAllocate"/> hands out one (refcount 1,
    /// zeroed with <see cref="AllocationFlags.Zero"/>). False when no node that may be used has a whole free 2 MiB block
    /// (there is no compaction: a fragmented node fails, as Linux's THP fault falls back to small pages).
    /// </summary>
    /// <param name="preferredNode">The node tried first.</param>
    /// <param name="flags">Zero and ExactNode.</param>
    /// <param name="first">The block's first frame; the block is <c>[first, first + 512)</c>.</param>
    /// <exception cref="UseAfterFreeException">Audit mode: a frame of the block was written to while free (it is quarantined, the rest of the block freed).</exception>
    public bool TryAllocateBlock(int preferredNode, AllocationFlags flags, out Pfn first)
    {
        var preferred = NodeList(preferredNode, nameof(preferredNode));
        if ((flags & ~KnownAllocationFlags) != 0)
        {
            throw new ArgumentOutOfRangeException(
                nameof(flags), flags, $"allocation flags {flags} contain unknown bits: only Zero and ExactNode exist");
        }

        Span<FrameFlags> flagsWhileFree = stackalloc FrameFlags[(int)NodeFreeList.BlockFrames];
        var source = preferred;
        uint index;
        if (!preferred.TryPopBlock(out index, flagsWhileFree))
        {
            var found = false;
            if ((flags & AllocationFlags.ExactNode) == 0)
            {
                foreach (var other in _nodes)
                {
                    if (other != preferred && other.TryPopBlock(out index, flagsWhileFree))
                    {
                        source = other;
                        found = true;
                        break;
                    }
                }
            }

            if (!found)
            {
                first = default;
                return false;
            }
        }

        first = new Pfn(index);
        for (var i = 0; i < flagsWhileFree.Length; i++)
        {
            var frameIndex = index + (uint)i;
            if ((flagsWhileFree[i] & FrameFlags.Poisoned) == 0)
            {
                continue;
            }

            var bytes = ArenaSpan(frameIndex);
            var corrupt = bytes.IndexOfAnyExcept(PoisonByte);
            if (corrupt < 0)
            {
                continue;
            }

            // Quarantine the written frame; the rest of the block goes back free, as it was.
            _frames[frameIndex].WriteFlags(FrameFlags.Reserved | FrameFlags.Poisoned);
            source.CountUseAfterFree();
            for (var j = 0; j < flagsWhileFree.Length; j++)
            {
                if (j != i)
                {
                    source.Push(index + (uint)j, flagsWhileFree[j] | FrameFlags.Free);
                }
            }

            var pfn = new Pfn(frameIndex);
            throw new UseAfterFreeException(
                pfn,
                "the allocator",
                corrupt,
                $"use after free: {pfn} was written while free: byte at offset 0x{corrupt:x} is 0x{bytes[corrupt]:x2}, not the poison 0x{PoisonByte:x2}; the frame is quarantined (Reserved) and will not be reused");
        }

        var handedOut = FrameFlags.None;
        if ((flags & AllocationFlags.Zero) != 0)
        {
            ZeroBlock(index);
            for (var i = 0; i < NodeFreeList.BlockFrames; i++)
            {
                source.CountZeroed();
            }

            handedOut = FrameFlags.Zeroed;
        }

        for (var i = 0u; i < NodeFreeList.BlockFrames; i++)
        {
            _frames[index + i].ResetForAllocation(handedOut);
        }

        return true;
    }

    /// <summary>Whole free 2 MiB blocks on <paramref name="node"/> (what <see cref="TryAllocateBlock"/> can still hand out there).</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="node"/> does not exist.</exception>
    public int FreeBlocks(int node) => NodeList(node, nameof(node)).FreeBlocks;

    /// <summary>Takes a reference on an allocated frame (get_page).</summary>
    /// <exception cref="FrameStateException">The frame's refcount is 0 (free, being freed, or quarantined).</exception>
    public void Get(Pfn pfn)
    {
        ref var refCount = ref _frames[Index(pfn)].RefCountLocation;
        while (true)
        {
            var old = Volatile.Read(ref refCount);
            if (old <= 0)
            {
                throw new FrameStateException(
                    pfn,
                    $"Get on {pfn} whose refcount is {old}: only a frame that already has a reference can gain one (use TryGet for a speculative reference)");
            }

            if (Interlocked.CompareExchange(ref refCount, old + 1, old) == old)
            {
                return;
            }
        }
    }

    /// <summary>Takes a reference unless the refcount is 0 (get_page_unless_zero), for speculative users such as pfn scanners.</summary>
    /// <returns>True when a reference was taken.</returns>
    public bool TryGet(Pfn pfn)
    {
        ref var refCount = ref _frames[Index(pfn)].RefCountLocation;
        while (true)
        {
            var old = Volatile.Read(ref refCount);
            if (old <= 0)
            {
                return false;
            }

            if (Interlocked.CompareExchange(ref refCount, old + 1, old) == old)
            {
                return true;
            }
        }
    }

    /// <summary>Drops a reference (put_page); the last one frees the frame.</summary>
    /// <returns>True when this call freed the frame.</returns>
    /// <exception cref="FrameStateException">
    /// The refcount is already 0, or this is the last reference and the frame is still mapped or carries a
    /// flag of <see cref="FlagsForbiddenAtFree"/> (nothing is changed then).
    /// </exception>
    public bool Put(Pfn pfn)
    {
        if (!DropReference(pfn, out var index))
        {
            return false;
        }

        Release(index, ref _frames[index]);
        return true;
    }

    /// <summary>
    /// Drops one reference on each frame, as <see cref="Put"/> would, and returns the frames whose last
    /// reference went to their node's free list with one lock acquisition per node (the batch a
    /// <c>tlb_finish_mmu</c> frees). Checks and exceptions are <see cref="Put"/>'s, frame by frame; frames
    /// before a failing one are already handled.
    /// </summary>
    /// <returns>How many frames were freed.</returns>
    public int PutMany(ReadOnlySpan<Pfn> pfns)
    {
        Span<uint> heads = stackalloc uint[_nodes.Length];
        Span<uint> tails = stackalloc uint[_nodes.Length];
        Span<int> counts = stackalloc int[_nodes.Length];
        heads.Fill(FrameInfo.NoFrame);
        var observer = Observer;
        List<Pfn>? observed = observer is null ? null : [];
        var freed = 0;
        try
        {
            foreach (var pfn in pfns)
            {
                if (!DropReference(pfn, out var index))
                {
                    continue;
                }

                ref var frame = ref _frames[index];
                var freeFlags = PrepareForFree(index, ref frame);
                frame.WriteFlags(freeFlags);
                int node = frame.Node;
                frame.LruNext = heads[node];
                if (heads[node] == FrameInfo.NoFrame)
                {
                    tails[node] = index;
                }

                heads[node] = index;
                counts[node]++;
                freed++;
                observed?.Add(pfn);
            }
        }
        finally
        {
            // Even when a frame failed its checks, the ones already unlinked must reach their free lists.
            for (var node = 0; node < _nodes.Length; node++)
            {
                if (counts[node] != 0)
                {
                    _nodes[node].PushChain(heads[node], tails[node], counts[node]);
                }
            }

            if (observed is not null)
            {
                foreach (var pfn in observed)
                {
                    observer!.OnFrameFreed(pfn);
                }
            }
        }

        return freed;
    }

    /// <summary>Drops the last reference and frees the frame (free_page); use <see cref="Put"/> when others may hold references.</summary>
    /// <exception cref="FrameStateException">
    /// The frame is already free (double free), its refcount is not 1, it is still mapped, or it carries a
    /// flag of <see cref="FlagsForbiddenAtFree"/>.
    /// </exception>
    public void Free(Pfn pfn)
    {
        var index = Index(pfn);
        ref var frame = ref _frames[index];
        if (frame.IsFree)
        {
            throw new FrameStateException(pfn, $"Free of {pfn} which is already free: a frame may be freed once per allocation (double free)");
        }

        CheckFreeable(pfn, ref frame, nameof(Free));
        var old = Interlocked.CompareExchange(ref frame.RefCountLocation, 0, 1);
        if (old != 1)
        {
            throw new FrameStateException(
                pfn,
                old == 0
                    ? $"Free of {pfn} whose refcount is 0: the frame has no reference to drop (being freed or quarantined)"
                    : $"Free of {pfn} whose refcount is {old}: Free drops the last reference and other references remain; drop yours with Put");
        }

        RunReleaseHook(pfn, ref frame);
        Release(index, ref frame);
    }

    /// <summary>
    /// Freezes the refcount (Linux's <c>folio_ref_freeze</c>): if it is exactly <paramref name="expected"/>, sets it to
    /// 0 so that no speculative <see cref="TryGet"/> can take a reference, and returns true. The caller then owns the
    /// frame outright and either frees it with <see cref="FreeFrozen"/> or restores it with <see cref="Unfreeze"/>.
    /// </summary>
    public bool TryFreeze(Pfn pfn, int expected)
    {
        if (expected <= 0)
        {
            throw new ArgumentOutOfRangeException(nameof(expected), expected, "a frozen frame had at least one reference: expected must be positive");
        }

        return Interlocked.CompareExchange(ref _frames[Index(pfn)].RefCountLocation, 0, expected) == expected;
    }

    /// <summary>Undoes <see cref="TryFreeze"/>: the refcount becomes <paramref name="count"/> again (<c>folio_ref_unfreeze</c>).</summary>
    /// <exception cref="FrameStateException">The frame is not frozen (its refcount is not 0) or is free.</exception>
    public void Unfreeze(Pfn pfn, int count)
    {
        ref var frame = ref _frames[Index(pfn)];
        if (frame.IsFree || count <= 0 || Interlocked.CompareExchange(ref frame.RefCountLocation, count, 0) != 0)
        {
            throw new FrameStateException(pfn, $"Unfreeze of {pfn} to {count}: only a frame frozen by TryFreeze (refcount 0, not free) can be given references back");
        }
    }

    /// <summary>Frees a frame whose refcount <see cref="TryFreeze"/> set to 0 (the caller owns it outright).</summary>
    /// <exception cref="FrameStateException">The frame is not frozen, still mapped, or carries a flag of <see cref="FlagsForbiddenAtFree"/>.</exception>
    public void FreeFrozen(Pfn pfn)
    {
        var index = Index(pfn);
        ref var frame = ref _frames[index];
        if (frame.IsFree || frame.RefCount != 0)
        {
            throw new FrameStateException(pfn, $"FreeFrozen of {pfn} whose refcount is {frame.RefCount}{(frame.IsFree ? " (free)" : string.Empty)}: only a frame frozen by TryFreeze can be freed this way");
        }

        CheckFreeable(pfn, ref frame, nameof(FreeFrozen));
        RunReleaseHook(pfn, ref frame);
        Release(index, ref frame);
    }

    /// <summary>Counts one more page-table entry mapping the frame (page_add_*_rmap's mapcount part).</summary>
    /// <returns>The new mapcount.</returns>
    /// <exception cref="FrameStateException">The frame has no reference (a mapping must hold one).</exception>
    public int IncrementMapCount(Pfn pfn)
    {
        ref var frame = ref _frames[Index(pfn)];
        if (frame.RefCount <= 0)
        {
            throw new FrameStateException(
                pfn,
                $"mapping {pfn} whose refcount is 0: a page-table entry may map only a frame it holds a reference on");
        }

        return Interlocked.Increment(ref frame.MapCountLocation);
    }

    /// <summary>Counts one page-table entry fewer mapping the frame.</summary>
    /// <returns>The new mapcount.</returns>
    /// <exception cref="FrameStateException">The mapcount is already 0.</exception>
    public int DecrementMapCount(Pfn pfn)
    {
        ref var mapCount = ref _frames[Index(pfn)].MapCountLocation;
        while (true)
        {
            var old = Volatile.Read(ref mapCount);
            if (old <= 0)
            {
                throw new FrameStateException(
                    pfn, $"unmapping {pfn} whose mapcount is {old}: the mapcount cannot go below 0 (unbalanced unmap)");
            }

            if (Interlocked.CompareExchange(ref mapCount, old - 1, old) == old)
            {
                return old - 1;
            }
        }
    }

    /// <summary>Atomically sets <paramref name="flags"/> on the frame (SetPageDirty, mark accessed, …).</summary>
    /// <exception cref="ArgumentException"><paramref name="flags"/> include an allocator-owned flag.</exception>
    public void SetFlags(Pfn pfn, FrameFlags flags)
    {
        CheckCallerFlags(flags, nameof(flags));
        _frames[Index(pfn)].SetFlags(flags);
    }

    /// <summary>Atomically clears <paramref name="flags"/> on the frame.</summary>
    /// <exception cref="ArgumentException"><paramref name="flags"/> include an allocator-owned flag.</exception>
    public void ClearFlags(Pfn pfn, FrameFlags flags)
    {
        CheckCallerFlags(flags, nameof(flags));
        _frames[Index(pfn)].ClearFlags(flags);
    }

    /// <summary>Atomically sets one flag; true when it was already set (so <c>!TestAndSetFlag(p, Locked)</c> is trylock_page).</summary>
    /// <exception cref="ArgumentException"><paramref name="flag"/> is not a single caller-owned flag.</exception>
    public bool TestAndSetFlag(Pfn pfn, FrameFlags flag)
    {
        CheckSingleCallerFlag(flag);
        return _frames[Index(pfn)].TestAndSetFlag(flag);
    }

    /// <summary>Atomically clears one flag; true when it was set (TestClearPageReferenced, unlock, …).</summary>
    /// <exception cref="ArgumentException"><paramref name="flag"/> is not a single caller-owned flag.</exception>
    public bool TestAndClearFlag(Pfn pfn, FrameFlags flag)
    {
        CheckSingleCallerFlag(flag);
        return _frames[Index(pfn)].TestAndClearFlag(flag);
    }

    /// <summary>True when the frame is on its node's free list.</summary>
    public bool IsFree(Pfn pfn) => _frames[Index(pfn)].IsFree;

    /// <summary>
    /// Throws when <paramref name="user"/> is about to use a frame nobody holds: free, being freed or
    /// quarantined (refcount 0). Auditors call it for every frame a secondary MMU maps.
    /// </summary>
    /// <exception cref="UseAfterFreeException">The frame is free or has no reference.</exception>
    public void AssertNotFree(Pfn pfn, string user)
    {
        ArgumentNullException.ThrowIfNull(user);
        ref var frame = ref _frames[Index(pfn)];
        if (frame.IsFree)
        {
            throw new UseAfterFreeException(
                pfn, user, null, $"use after free: {user} uses {pfn}, which is free: only allocated frames may be used or mapped");
        }

        if (frame.RefCount <= 0)
        {
            throw new UseAfterFreeException(
                pfn,
                user,
                null,
                $"use after free: {user} uses {pfn}, whose refcount is 0 (being freed or quarantined): only frames someone holds may be used or mapped");
        }
    }

    /// <summary>The frame's 4 KiB, in place.</summary>
    /// <exception cref="PfnOutOfRangeException"><paramref name="pfn"/> is outside host RAM.</exception>
    public Span<byte> FrameBytes(Pfn pfn) => ArenaSpan(Index(pfn));

    /// <summary>The frame's address in the arena (valid until <see cref="Dispose"/>), for walkers and TLBs that hold host pointers.</summary>
    /// <exception cref="PfnOutOfRangeException"><paramref name="pfn"/> is outside host RAM.</exception>
    public unsafe byte* FrameAddress(Pfn pfn) => ArenaBase() + ((nint)Index(pfn) << Paging.PageShift); // unsafe: returns a raw host pointer by design.

    /// <summary>Copies the 4 KiB of <paramref name="from"/> over <paramref name="to"/> (COW, migration); both must be held.</summary>
    /// <exception cref="UseAfterFreeException">Either frame is free or has no reference.</exception>
    public void CopyFrame(Pfn from, Pfn to)
    {
        AssertNotFree(from, nameof(CopyFrame) + " (source)");
        AssertNotFree(to, nameof(CopyFrame) + " (destination)");
        if (from != to)
        {
            FrameBytes(from).CopyTo(FrameBytes(to));
        }
    }

    /// <summary>True when the two frames hold the same 4 KiB (KSM's memcmp_pages; vectorised by <see cref="MemoryExtensions.SequenceEqual{T}(Span{T}, ReadOnlySpan{T})"/>).</summary>
    public bool FrameEquals(Pfn a, Pfn b) => a == b || FrameBytes(a).SequenceEqual(FrameBytes(b));

    /// <summary>CRC-32C of the frame's 4 KiB (<see cref="Crc32C"/>), as KSM's page checksum.</summary>
    public uint Checksum(Pfn pfn) => Crc32C.Compute(FrameBytes(pfn));

    /// <summary>A snapshot of the counters.</summary>
    public HostMemoryStats GetStats()
    {
        long allocations = 0, frees = 0, zeroed = 0, fallbacks = 0, useAfterFree = 0;
        foreach (var node in _nodes)
        {
            allocations += node.Allocations;
            frees += node.Frees;
            zeroed += node.ZeroedFrames;
            fallbacks += node.FallbackAllocations;
            useAfterFree += node.UseAfterFreeDetections;
        }

        var free = FreeFramesPerNode();
        return new HostMemoryStats
        {
            TotalFrames = TotalFrames,
            FreeFrames = free.Sum(),
            FreeFramesPerNode = free,
            Allocations = allocations,
            Frees = frees,
            ZeroedFrames = zeroed,
            FallbackAllocations = fallbacks,
            UseAfterFreeDetections = useAfterFree,
        };
    }

    /// <summary>Returns the arena to the OS. No other thread may use this instance or a frame pointer or span from it afterwards.</summary>
    public void Dispose()
    {
        ReleaseArena();
        GC.SuppressFinalize(this);
    }

    private void CheckFreeable(Pfn pfn, ref FrameInfo frame, string operation)
    {
        var mapCount = frame.MapCount;
        if (mapCount != 0)
        {
            throw new FrameStateException(
                pfn,
                $"{operation} would free {pfn} while its mapcount is {mapCount}: a frame must be unmapped from every page table before its last reference is dropped");
        }

        // An LRU frame is taken off its list by the release hook once the last reference is gone.
        var forbidden = frame.Flags & FlagsForbiddenAtFree & (ReleaseHook is null ? ~FrameFlags.None : ~FrameFlags.Lru);
        if (forbidden != 0)
        {
            throw new FrameStateException(
                pfn,
                $"{operation} would free {pfn} with flags {forbidden}: these must be cleared before the last reference is dropped (bad page state)");
        }
    }

    private static void CheckCallerFlags(FrameFlags flags, string paramName)
    {
        if ((flags & AllocatorOwnedFlags) != 0)
        {
            throw new ArgumentException(
                $"flags {flags} include {flags & AllocatorOwnedFlags}, which only the allocator may change", paramName);
        }
    }

    private static void CheckSingleCallerFlag(FrameFlags flag)
    {
        if (!BitOperations.IsPow2((uint)flag))
        {
            throw new ArgumentException($"flag {flag} must be exactly one flag bit", nameof(flag));
        }

        CheckCallerFlags(flag, nameof(flag));
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void ThrowPfnOutOfRange(Pfn pfn, long totalFrames) => throw new PfnOutOfRangeException(pfn, totalFrames);

    private uint Index(Pfn pfn)
    {
        if (pfn.Value >= (ulong)TotalFrames)
        {
            ThrowPfnOutOfRange(pfn, TotalFrames);
        }

        return (uint)pfn.Value;
    }

    private NodeFreeList NodeList(int node, string paramName)
    {
        if ((uint)node >= (uint)_nodes.Length)
        {
            throw new ArgumentOutOfRangeException(
                paramName, node, $"NUMA node {node} does not exist: nodes are 0 to {_nodes.Length - 1}");
        }

        return _nodes[node];
    }

    private ImmutableArray<long> FreeFramesPerNode()
    {
        var free = ImmutableArray.CreateBuilder<long>(_nodes.Length);
        foreach (var node in _nodes)
        {
            free.Add(node.FreeCount);
        }

        return free.MoveToImmutable();
    }

    /// <summary>
    /// The last reference just went: the release hook takes the frame off its LRU and uncharges it. Afterwards no
    /// LRU link may remain (a hook that forgot is a bug).
    /// </summary>
    private void RunReleaseHook(Pfn pfn, ref FrameInfo frame)
    {
        if ((frame.Flags & FrameFlags.Lru) == 0 && frame.MemoryCgroupId == 0)
        {
            return;
        }

        ReleaseHook?.OnLastReference(pfn, ref frame);
        if ((frame.Flags & FrameFlags.Lru) != 0 || frame.MemoryCgroupId != 0)
        {
            throw new FrameStateException(pfn, $"{pfn} is still on an LRU list or charged after its release hook ran: the hook must take it off and uncharge it");
        }
    }

    /// <summary>The frame's last reference is gone and the caller owns it: poison it, forget it, list it, tell the observer.</summary>
    private void Release(uint index, ref FrameInfo frame)
    {
        var freeFlags = PrepareForFree(index, ref frame);
        _nodes[frame.Node].Push(index, freeFlags);
        Observer?.OnFrameFreed(new Pfn(index));
    }

    /// <summary>Poisons (in audit mode) and resets a frame whose last reference is gone; returns its flags while free.</summary>
    private FrameFlags PrepareForFree(uint index, ref FrameInfo frame)
    {
        var freeFlags = FrameFlags.Free;
        if (AuditFreedFrames)
        {
            ArenaSpan(index).Fill(PoisonByte);
            freeFlags |= FrameFlags.Poisoned;
        }

        frame.ResetForFree();
        return freeFlags;
    }

    /// <summary>
    /// Drops one reference; true (with the frame's index) when it was the last one, after checking that the
    /// frame may be freed. The caller then returns the frame to its free list.
    /// </summary>
    private bool DropReference(Pfn pfn, out uint index)
    {
        index = Index(pfn);
        ref var frame = ref _frames[index];
        ref var refCount = ref frame.RefCountLocation;
        while (true)
        {
            var old = Volatile.Read(ref refCount);
            if (old <= 0)
            {
                throw new FrameStateException(
                    pfn,
                    frame.IsFree
                        ? $"Put on {pfn} whose refcount is 0: the frame is already free (a double put)"
                        : $"Put on {pfn} whose refcount is 0: the frame has no reference to drop (being freed or quarantined)");
            }

            if (Interlocked.CompareExchange(ref refCount, old - 1, old) == old)
            {
                if (old == 1)
                {
                    // Checked only once the count is 0: before, a speculative TryGet (reclaim isolating the frame from an
                    // LRU, a pfn scanner) could take a reference and set its flags between our read of the count and
                    // our read of the flags, and the check would blame a frame that is not being freed. At 0 nobody can
                    // take a reference, so the flags and mapcount are the freed frame's own; a failed check gives the
                    // reference back, so nothing is changed.
                    try
                    {
                        CheckFreeable(pfn, ref frame, nameof(Put));
                    }
                    catch (FrameStateException)
                    {
                        Volatile.Write(ref refCount, 1);
                        throw;
                    }

                    RunReleaseHook(pfn, ref frame);
                }

                return old == 1;
            }
        }
    }

    /// <summary>Zeroes a whole 2 MiB block as one run with one store fence (see <see cref="FrameZeroing"/> for why).</summary>
    private unsafe void ZeroBlock(uint first) => // unsafe: clears raw arena memory.
        FrameZeroing.ClearRun(ArenaBase() + ((nint)first << Paging.PageShift), (int)NodeFreeList.BlockFrames);

    private unsafe void ZeroFrame(uint index) => // unsafe: zeroes through a raw arena pointer.
        FrameZeroing.Clear(ArenaBase() + ((nint)index << Paging.PageShift));

    private unsafe Span<byte> ArenaSpan(uint index) => // unsafe: a span over native memory needs its pointer.
        new(ArenaBase() + ((nint)index << Paging.PageShift), FrameSize);

    private unsafe byte* ArenaBase() // unsafe: the arena is raw native memory.
    {
        var arena = _arena;
        ObjectDisposedException.ThrowIf(arena == 0, this);
        return (byte*)arena;
    }

    private unsafe void ReleaseArena() // unsafe: frees the native arena.
    {
        var arena = Interlocked.Exchange(ref _arena, 0);
        if (arena != 0)
        {
            NativeMemory.AlignedFree((void*)arena);
        }
    }
}
