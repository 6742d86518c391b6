using System.Diagnostics.CodeAnalysis;

namespace Hypervisor.HostMm.Frames;

/// <summary>
/// The state of one 4 KiB host frame (Linux's <c>struct page</c>), kept in <see cref="HostMemory"/>'s
/// frame table and reached by <c>ref</c> through <see cref="HostMemory.Frame"/>; never copy it to change it.
/// </summary>
/// <remarks>
/// <para>Ownership of the fields:</para>
/// <list type="bullet">
/// <item><see cref="RefCount"/>, <see cref="MapCount"/> and <see cref="Flags"/> are atomics changed only
/// through <see cref="HostMemory"/> (Get/Put/Free, map count, flag methods) or this type's internal
/// atomic helpers. Invariant: refcount 0 ⇔ the frame is free, being freed, or quarantined; a frame with
/// mapcount &gt; 0 is never freed.</item>
/// <item><see cref="LruPrev"/>/<see cref="LruNext"/> are frame indices (<see cref="NoFrame"/> = none): the
/// node free list's singly-linked next pointer while <see cref="FrameFlags.Free"/> (under the node lock),
/// the LRU list links while <see cref="FrameFlags.Lru"/> (under that LRU's lock).</item>
/// <item>Reverse map (the anon_vma + page index analogue): <see cref="RmapOwner"/> is the frame's anon family (the
/// <see cref="Vmas.Vma.AnonId"/> of the VMA that created it, which every VMA forked or split from that one
/// shares) and <see cref="RmapIndex"/> its linear page index, so each mapping, in any process of the family, is
/// at the VMA's address for that index. With <see cref="FrameFlags.Ksm"/> set, <see cref="RmapOwner"/> is
/// <see cref="NoOwner"/> and <see cref="RmapIndex"/> is the index of its KSM stable-tree node, which lists
/// every (mm, address) that maps it. Changed under the page lock (<see cref="FrameFlags.Locked"/>).</item>
/// <item><see cref="SwapSlot"/> is the swap slot while <see cref="FrameFlags.SwapCache"/> (page-&gt;private).</item>
/// <item><see cref="MemoryCgroupId"/> is the memory cgroup the frame is charged to (page-&gt;memcg_data), 0 when
/// uncharged; set once after allocation, cleared by the release hook when the last reference goes.</item>
/// </list>
/// </remarks>
[StructLayout(LayoutKind.Sequential)]
public struct FrameInfo
{
    /// <summary>The "no frame" value of an LRU or free-list link.</summary>
    public const uint NoFrame = uint.MaxValue;

    /// <summary>The <see cref="RmapOwner"/> of a frame no mm owns (free, KSM, or not yet mapped).</summary>
    public const int NoOwner = -1;

    /// <summary>The lowest bit of <see cref="FrameFlags.LruRefsMask"/>.</summary>
    public const int LruRefsShift = 27;

    /// <summary>The lowest bit of <see cref="FrameFlags.GenerationMask"/>.</summary>
    public const int GenerationShift = 22;

    /// <summary>The <see cref="SwapSlot"/> of a frame that is not in the swap cache.</summary>
    public const uint NoSwapSlot = uint.MaxValue;

    // Layout: 40 bytes per frame (1% of the 4 KiB it describes), widest field first; _memcg fills the former padding.
    private ulong _rmapIndex;
    private int _refCount;
    private int _mapCount;
    private uint _flags;
    private int _rmapOwner;
    private uint _lruPrev;
    private uint _lruNext;
    private uint _swapSlot;
    private ushort _node;
    private ushort _memcg;

    /// <summary>References held on the frame (page refcount); 0 when free.</summary>
    public readonly int RefCount => Volatile.Read(in _refCount);

    /// <summary>Page-table entries that map the frame (page mapcount, starting at 0 here, not -1).</summary>
    public readonly int MapCount => Volatile.Read(in _mapCount);

    /// <summary>The frame's state bits.</summary>
    public readonly FrameFlags Flags => (FrameFlags)Volatile.Read(in _flags);

    /// <summary>The memory cgroup the frame is charged to, or 0 when it is not charged.</summary>
    public readonly int MemoryCgroupId => _memcg;

    /// <summary>The NUMA node the frame belongs to (fixed for the frame's life).</summary>
    public readonly int Node => _node;

    /// <summary>True when the frame is on its node's free list.</summary>
    public readonly bool IsFree => (Flags & FrameFlags.Free) != 0;

    /// <summary>Previous frame on the LRU list, or <see cref="NoFrame"/>.</summary>
    public uint LruPrev
    {
        readonly get => _lruPrev;
        internal set => _lruPrev = value;
    }

    /// <summary>Next frame on the LRU list (or on the free list while free), or <see cref="NoFrame"/>.</summary>
    public uint LruNext
    {
        readonly get => _lruNext;
        internal set => _lruNext = value;
    }

    /// <summary>The anon family (VMA <see cref="Vmas.Vma.AnonId"/>) of an anonymous frame, or <see cref="NoOwner"/>.</summary>
    public readonly int RmapOwner => _rmapOwner;

    /// <summary>Linear page index of the anonymous frame in its family, or the KSM stable-node index when <see cref="FrameFlags.Ksm"/>.</summary>
    public readonly ulong RmapIndex => _rmapIndex;

    /// <summary>The swap slot while in the swap cache, else <see cref="NoSwapSlot"/>.</summary>
    public uint SwapSlot
    {
        readonly get => _swapSlot;
        internal set => _swapSlot = value;
    }

    /// <summary>
    /// The multi-gen LRU generation field (<see cref="FrameFlags.GenerationMask"/>): the frame's generation list index
    /// plus one (1 to <see cref="FrameFlags.GenerationMask"/>'s width allows), or 0 when it is on no generation list.
    /// </summary>
    public readonly int Generation => (int)(((uint)Flags & (uint)FrameFlags.GenerationMask) >> GenerationShift);

    /// <summary>The multi-gen LRU's reference counter (<see cref="FrameFlags.LruRefsMask"/>, 0–3).</summary>
    public readonly int LruRefs => (int)(((uint)Flags & (uint)FrameFlags.LruRefsMask) >> LruRefsShift);

    /// <summary>True when every bit of <paramref name="flags"/> is set.</summary>
    public readonly bool Has(FrameFlags flags) => (Flags & flags) == flags;

    /// <summary>The refcount word, for the allocator's atomics.</summary>
    [UnscopedRef]
    internal ref int RefCountLocation => ref _refCount;

    /// <summary>The mapcount word, for the allocator's atomics.</summary>
    [UnscopedRef]
    internal ref int MapCountLocation => ref _mapCount;

    /// <summary>
    /// Records the anonymous reverse map: the frame belongs to anon family <paramref name="family"/> (the
    /// <see cref="Vmas.Vma.AnonId"/> of the VMA that created it, shared by every VMA forked from it) at linear page
    /// index <paramref name="pageIndex"/> (<see cref="Vmas.Vma.PageIndexOf"/>), so every mapping is found at
    /// <see cref="Vmas.Vma.AddressOfIndex"/> in each VMA of the family.
    /// </summary>
    internal void SetAnonRmap(int family, ulong pageIndex)
    {
        _rmapOwner = family;
        _rmapIndex = pageIndex;
    }

    /// <summary>Charges the frame to memory cgroup <paramref name="id"/> (0 uncharges).</summary>
    internal void SetMemoryCgroup(int id) => _memcg = (ushort)id;

    /// <summary>Makes the frame a KSM page whose mappings are listed by stable-tree node <paramref name="stableNode"/>.</summary>
    internal void SetKsmRmap(ulong stableNode)
    {
        _rmapOwner = NoOwner;
        _rmapIndex = stableNode;
        SetFlags(FrameFlags.Ksm);
    }

    /// <summary>Forgets the reverse mapping (and the KSM bit).</summary>
    internal void ClearRmap()
    {
        ClearFlags(FrameFlags.Ksm);
        _rmapOwner = NoOwner;
        _rmapIndex = 0;
    }

    /// <summary>
    /// Atomically replaces the generation field with <paramref name="generation"/> (list index + 1, 0 = none), leaving
    /// every other bit as it is. The caller holds the lock of the lruvec whose list the frame joins or leaves.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="generation"/> does not fit the field (0–7).</exception>
    internal void SetGeneration(int generation)
    {
        const uint mask = (uint)FrameFlags.GenerationMask;
        if ((uint)generation > (mask >> GenerationShift))
        {
            throw new ArgumentOutOfRangeException(nameof(generation), generation, "a frame's generation field holds 0 (none) to 7");
        }

        var bits = (uint)generation << GenerationShift;
        var old = Volatile.Read(ref _flags);
        while (true)
        {
            var seen = Interlocked.CompareExchange(ref _flags, (old & ~mask) | bits, old);
            if (seen == old)
            {
                return;
            }

            old = seen;
        }
    }

    /// <summary>
    /// Atomically clears the bits of <paramref name="mask"/> and sets <paramref name="bits"/> (Linux's
    /// <c>set_mask_bits</c>), leaving every other bit as it is.
    /// </summary>
    internal void ReplaceFlags(FrameFlags mask, FrameFlags bits)
    {
        var old = Volatile.Read(ref _flags);
        while (true)
        {
            var seen = Interlocked.CompareExchange(ref _flags, (old & ~(uint)mask) | (uint)bits, old);
            if (seen == old)
            {
                return;
            }

            old = seen;
        }
    }

    /// <summary>
    /// One access through a reference under the multi-gen LRU (Linux's <c>lru_gen_inc_refs</c>): the first sets
    /// <see cref="FrameFlags.Accessed"/> and zeroes the counter; later ones count up to 3 in
    /// <see cref="FrameFlags.LruRefsMask"/>; once it is full, <see cref="FrameFlags.Workingset"/> is set.
    /// </summary>
    internal void IncrementLruRefs()
    {
        if (!Has(FrameFlags.Accessed))
        {
            ReplaceFlags(FrameFlags.LruRefsMask, FrameFlags.Accessed);
            return;
        }

        const uint mask = (uint)FrameFlags.LruRefsMask;
        var old = Volatile.Read(ref _flags);
        while (true)
        {
            if ((old & mask) == mask)
            {
                SetFlags(FrameFlags.Workingset);
                return;
            }

            var seen = Interlocked.CompareExchange(ref _flags, old + (1u << LruRefsShift), old);
            if (seen == old)
            {
                return;
            }

            old = seen;
        }
    }

    /// <summary>Atomically sets <paramref name="flags"/>.</summary>
    internal void SetFlags(FrameFlags flags) => Interlocked.Or(ref _flags, (uint)flags);

    /// <summary>Atomically clears <paramref name="flags"/>.</summary>
    internal void ClearFlags(FrameFlags flags) => Interlocked.And(ref _flags, ~(uint)flags);

    /// <summary>Atomically sets <paramref name="flag"/>; true when it was already set (test_and_set_bit).</summary>
    internal bool TestAndSetFlag(FrameFlags flag) => (Interlocked.Or(ref _flags, (uint)flag) & (uint)flag) != 0;

    /// <summary>Atomically clears <paramref name="flag"/>; true when it was set (test_and_clear_bit).</summary>
    internal bool TestAndClearFlag(FrameFlags flag) => (Interlocked.And(ref _flags, ~(uint)flag) & (uint)flag) != 0;

    /// <summary>Replaces all flags; only for the allocator, which owns the frame at that moment.</summary>
    internal void WriteFlags(FrameFlags flags) => Volatile.Write(ref _flags, (uint)flags);

    /// <summary>Construction: a free frame of <paramref name="node"/> linked to <paramref name="next"/>.</summary>
    internal void InitializeFree(ushort node, uint next)
    {
        this = default;
        _node = node;
        _flags = (uint)FrameFlags.Free;
        _lruPrev = NoFrame;
        _lruNext = next;
        _rmapOwner = NoOwner;
        _swapSlot = NoSwapSlot;
    }

    /// <summary>
    /// Hand-out: every field but the node reset, <paramref name="flags"/> set, and the refcount published
    /// as 1 last, so a speculative <see cref="HostMemory.TryGet"/> that sees the reference sees the rest.
    /// </summary>
    internal void ResetForAllocation(FrameFlags flags)
    {
        _mapCount = 0;
        _lruPrev = NoFrame;
        _lruNext = NoFrame;
        _rmapOwner = NoOwner;
        _rmapIndex = 0;
        _swapSlot = NoSwapSlot;
        _memcg = 0;
        Volatile.Write(ref _flags, (uint)flags);
        Volatile.Write(ref _refCount, 1);
    }

    /// <summary>Release: the reverse map and swap slot are forgotten before the frame goes back to the free list.</summary>
    internal void ResetForFree()
    {
        _rmapOwner = NoOwner;
        _rmapIndex = 0;
        _swapSlot = NoSwapSlot;
        _lruPrev = NoFrame;
    }
}
