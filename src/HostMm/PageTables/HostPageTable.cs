using System.Diagnostics;
using Hypervisor.HostMm.Frames;

namespace Hypervisor.HostMm.PageTables;

/// <summary>
/// The host page tables of one host process (mm): x86-64 4-level paging (PML4 → PDPT → PD → PTE table)
/// over the 47-bit user address space <c>[0, 2^47)</c>, every table a zeroed host frame of 512
/// <c>ulong</c> entries flagged <see cref="FrameFlags.PageTable"/>. Upper-level entries are
/// <c>Present(childPfn, Writable | User)</c>; leaves are <see cref="HostPte"/> values, present or one of
/// the <see cref="HostPteEncoding"/> non-present forms. A PD entry may instead be a 2 MiB huge leaf
/// (<see cref="HostPte.LargePageBit"/>, a transparent huge page): see <c>HostPageTable.Huge.cs</c>.
/// </summary>
/// <remarks>
/// <para><b>Locks</b>, in the product's order mmap lock → page lock → PTL → GuestMmu's MMU lock →
/// allocator node lock:</para>
/// <list type="bullet">
/// <item>PTL: one spinlock per PTE table on its frame's <see cref="FrameFlags.Locked"/> bit
/// (<see cref="PageTableLock"/>). It guards that table's 512 leaf entries against other lockers: every
/// leaf write happens under it (<see cref="TryLock"/>, <see cref="Walk{TVisitor}"/>,
/// <see cref="MoveEntries{TVisitor}"/>). Held briefly; nothing that blocks runs under it, and no table
/// is ever allocated under it (tables are populated before the PTL is taken). When two are needed they
/// are taken in ascending table pfn.</item>
/// <item><c>_populateLock</c> (Linux's <c>mm-&gt;page_table_lock</c>, which is also its huge-PMD lock): every write of
/// an upper-level entry (install of a new table, clear before a free, install, change, split or clear of a huge leaf)
/// happens under it; install re-checks the entry under it, allocates a zeroed table, and publishes it with a Volatile
/// write. It is never taken under a PTL and takes only the allocator's leaf lock under itself, except that a huge
/// leaf's split flushes the TLB under it (Linux's <c>pmdp_invalidate</c> under the PMD lock).</item>
/// </list>
/// <para><b>Lockless readers</b> (<see cref="Read"/>, the descent of every operation) read upper-level
/// entries and leaves with Volatile reads; a table once installed stays installed until
/// <see cref="FreeEmptyTables(Hva, Hva)"/> or <see cref="Dispose"/>, whose callers exclude every other user (the mmap
/// lock held for write, or exit), so a reader never follows a pointer to a freed table. Entries are
/// whole 64-bit words: readers never see a torn value.</para>
/// </remarks>
public sealed partial class HostPageTable : IDisposable
{
    /// <summary>Entries in every table (4 KiB / 8 bytes).</summary>
    public const int EntriesPerTable = 512;

    /// <summary>Exclusive end of the user address space these tables map: 2^47.</summary>
    public const ulong UserAddressLimit = 1UL << 47;

    // Each level's entries map 2^shift bytes: PML4 entries 512 GiB, PDPT 1 GiB, PD 2 MiB, PTE 4 KiB.
    private const int Pml4Shift = 39;
    private const int PdptShift = 30;
    private const int PdShift = 21;
    private const int PteShift = 12;
    private const int LevelBits = 9;
    private const ulong IndexMask = EntriesPerTable - 1;
    private const ulong PteTableSpan = 1UL << PdShift;
    private const ulong UpperEntryFlags = HostPte.WritableBit | HostPte.UserBit;

    private readonly HostMemory _memory;
    private readonly int _node;
    private readonly Pfn _root;
    private readonly Lock _populateLock = new();

    // Table counts per level (the root is implied until dispose); changed under _populateLock, read racily.
    private long _pdptTables;
    private long _pdTables;
    private long _pteTables;
    private int _disposed;

    /// <summary>Creates empty page tables: one zeroed root (PML4) frame, allocated on <paramref name="node"/>.</summary>
    /// <param name="memory">The host RAM every table frame comes from.</param>
    /// <param name="node">The NUMA node tables are allocated on first (the allocator falls back to others).</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="node"/> does not exist.</exception>
    /// <exception cref="OutOfHostMemoryException">No frame is free for the root.</exception>
    public HostPageTable(HostMemory memory, int node)
    {
        ArgumentNullException.ThrowIfNull(memory);
        if ((uint)node >= (uint)memory.NodeCount)
        {
            throw new ArgumentOutOfRangeException(
                nameof(node), node, $"NUMA node {node} does not exist: page tables can live on nodes 0 to {memory.NodeCount - 1}");
        }

        _memory = memory;
        _node = node;
        _root = AllocateTable(Pml4Shift);
    }

    /// <summary>Exclusive end of the user address space, <see cref="UserAddressLimit"/>, as an address.</summary>
    public static Hva UserAddressEnd => new(UserAddressLimit);

    /// <summary>The host RAM the tables live in.</summary>
    public HostMemory Memory => _memory;

    /// <summary>The root (PML4) table's frame: the value a CR3 would hold.</summary>
    public Pfn RootPfn => _root;

    /// <summary>Table frames at all levels, root included (0 after dispose).</summary>
    public long TablePages => Stats.TotalTables;

    /// <summary>Table frames per level (a racy snapshot unless quiescent).</summary>
    public PageTableStats Stats => new()
    {
        RootTables = Volatile.Read(ref _disposed) == 0 ? 1 : 0,
        PdptTables = Volatile.Read(ref _pdptTables),
        PdTables = Volatile.Read(ref _pdTables),
        PteTables = Volatile.Read(ref _pteTables),
    };

    /// <summary>
    /// The leaf entry for <paramref name="address"/>'s page, read without any lock (a Volatile read at
    /// every level): <see cref="HostPte.None"/> when any level is missing. Inside a huge leaf it is the 4 KiB view of
    /// it (<see cref="SubpageOf"/>): the subpage's frame with the leaf's flags, as a 4 KiB PTE would map it.
    /// </summary>
    /// <exception cref="InvalidRangeException"><paramref name="address"/> is at or beyond 2^47.</exception>
    public unsafe HostPte Read(Hva address) // unsafe: walks table frames through raw pointers.
    {
        CheckAddress(address, nameof(address));
        ThrowIfDisposed();
        if (!FindPteTable(address.Value, allocate: false, out var table, out _, out _))
        {
            var pmd = ReadPmd(address);
            return pmd.IsPresent ? SubpageOf(pmd, address) : HostPte.None;
        }

        return new HostPte(Volatile.Read(ref table[(address.Value >> PteShift) & IndexMask]));
    }

    /// <summary>
    /// Finds the leaf slot of <paramref name="address"/>'s page and takes its PTE table's lock
    /// (<c>pte_offset_map_lock</c>); with <paramref name="allocate"/>, missing tables are populated first.
    /// </summary>
    /// <param name="address">Any address in the page (the lock's <see cref="PteLock.Address"/> is page-aligned).</param>
    /// <param name="allocate">Populate missing tables (<c>pte_alloc</c>) rather than fail.</param>
    /// <param name="pte">The locked slot; dispose it to unlock. Default when the result is false.</param>
    /// <returns>False when a table is missing and <paramref name="allocate"/> is false.</returns>
    /// <exception cref="InvalidRangeException"><paramref name="address"/> is at or beyond 2^47.</exception>
    /// <exception cref="OutOfHostMemoryException">A table was needed and no frame is free.</exception>
    public unsafe bool TryLock(Hva address, bool allocate, out PteLock pte) // unsafe: the slot is a reference into a table frame.
    {
        CheckAddress(address, nameof(address));
        ThrowIfDisposed();
        if (!FindPteTable(address.Value, allocate, out var table, out var tablePfn, out _))
        {
            pte = default;
            return false;
        }

        PageTableLock.Acquire(_memory, tablePfn);
        pte = new PteLock(ref table[(address.Value >> PteShift) & IndexMask], _memory, tablePfn, address.PageAligned);
        return true;
    }

    /// <summary>
    /// The one walker every operation shares: calls <paramref name="visitor"/> once per PTE-table segment
    /// intersecting <c>[start, end)</c>, in ascending address order, with that table's lock held during the
    /// call (see <see cref="IPteVisitor.VisitTable"/>).
    /// </summary>
    /// <param name="start">Inclusive, page-aligned start.</param>
    /// <param name="end">Exclusive, page-aligned end, at most 2^47.</param>
    /// <param name="allocate">
    /// Populate missing tables so every segment is visited; otherwise a missing table at any level is
    /// skipped in one step (a hole under an empty PDPT entry costs one read for 1 GiB).
    /// </param>
    /// <param name="visitor">The visitor; it returns false to stop the walk.</param>
    /// <exception cref="InvalidRangeException">The range is empty, reversed, unaligned or reaches beyond 2^47.</exception>
    /// <exception cref="OutOfHostMemoryException">A table was needed and no frame is free (segments before it were visited).</exception>
    public unsafe void Walk<TVisitor>(Hva start, Hva end, bool allocate, ref TVisitor visitor) // unsafe: spans over table frames.
        where TVisitor : struct, IPteVisitor
    {
        CheckRange(start, end, nameof(start));
        ThrowIfDisposed();
        var address = start.Value;
        var last = end.Value;
        while (address < last)
        {
            if (!FindPteTable(address, allocate, out var table, out var tablePfn, out var holeEnd))
            {
                address = holeEnd;
                continue;
            }

            var segmentEnd = Math.Min(last, (address | (PteTableSpan - 1)) + 1);
            var entries = new Span<ulong>(table + ((address >> PteShift) & IndexMask), (int)((segmentEnd - address) >> PteShift));
            bool more;
            PageTableLock.Acquire(_memory, tablePfn);
            try
            {
                more = visitor.VisitTable(new Hva(address), entries, tablePfn);
            }
            finally
            {
                PageTableLock.Release(_memory, tablePfn);
            }

            if (!more)
            {
                return;
            }

            address = segmentEnd;
        }
    }

    /// <summary>
    /// mremap's <c>move_ptes</c>: moves every non-none leaf of <c>[oldStart, oldStart + pages × 4096)</c> to the
    /// same offset from <paramref name="newStart"/>.
    /// </summary>
    /// <remarks>
    /// The range goes in chunks that lie within one old and one new PTE table. A chunk whose old PTE table is
    /// missing holds nothing and is skipped without a call. For every other chunk: the new-side tables are
    /// populated (before any lock), both PTLs are taken (ascending pfn, once when the tables are the same),
    /// every destination slot of the chunk is checked to be none, each non-none entry is moved (old slot
    /// cleared, then new slot set) and reported to <see cref="IPteMoveVisitor.Moved"/>, then
    /// <see cref="IPteMoveVisitor.BeforeUnlock"/> gets the chunk's old range, then both PTLs are dropped.
    /// A failure leaves earlier chunks moved. Emptied old tables stay until <see cref="FreeEmptyTables(Hva, Hva)"/>.
    /// </remarks>
    /// <exception cref="InvalidRangeException">
    /// <paramref name="pages"/> is 0, an address is unaligned, a range reaches beyond 2^47, or the ranges overlap.
    /// </exception>
    /// <exception cref="InvalidOperationException">A destination slot is not none (nothing of that chunk was moved).</exception>
    /// <exception cref="OutOfHostMemoryException">A new-side table was needed and no frame is free.</exception>
    public unsafe void MoveEntries<TVisitor>(Hva oldStart, Hva newStart, ulong pages, ref TVisitor visitor) // unsafe: raw slots of two table frames.
        where TVisitor : struct, IPteMoveVisitor
    {
        CheckMove(oldStart, newStart, pages);
        ThrowIfDisposed();
        var length = pages << PteShift;
        var offset = 0UL;
        while (offset < length)
        {
            var from = oldStart.Value + offset;
            var to = newStart.Value + offset;
            var chunk = Math.Min(length - offset, Math.Min(PteTableSpan - (from & (PteTableSpan - 1)), PteTableSpan - (to & (PteTableSpan - 1))));
            if (!FindPteTable(from, allocate: false, out var oldTable, out var oldPfn, out var holeEnd))
            {
                offset = holeEnd - oldStart.Value;
                continue;
            }

            FindPteTable(to, allocate: true, out var newTable, out var newPfn, out _);
            var count = (int)(chunk >> PteShift);
            var source = oldTable + ((from >> PteShift) & IndexMask);
            var destination = newTable + ((to >> PteShift) & IndexMask);
            LockPair(oldPfn, newPfn);
            try
            {
                var occupied = new Span<ulong>(destination, count).IndexOfAnyExcept(0UL);
                if (occupied >= 0)
                {
                    var at = new Hva(to + ((ulong)occupied << PteShift));
                    throw new InvalidOperationException(
                        $"mremap destination {at} already holds {HostPteEncoding.Describe(new HostPte(destination[occupied]))}: entries can only move into none slots (unmap the destination first)");
                }

                for (var i = 0; i < count; i++)
                {
                    var value = source[i];
                    if (value == 0)
                    {
                        continue;
                    }

                    // Linux's get_and_clear then set_pte_at: a lockless reader sees the old slot go none first.
                    Volatile.Write(ref source[i], 0UL);
                    Volatile.Write(ref destination[i], value);
                    var delta = (ulong)i << PteShift;
                    visitor.Moved(new Hva(from + delta), new Hva(to + delta), new HostPte(value));
                }

                visitor.BeforeUnlock(new Hva(from), new Hva(from + chunk));
            }
            finally
            {
                UnlockPair(oldPfn, newPfn);
            }

            offset += chunk;
        }
    }

    /// <summary>
    /// Linux's <c>free_pgtables</c> for an unmapped region: frees every PTE table that lies entirely inside
    /// <c>[start, end)</c> and holds only none entries, then every PD and PDPT table that lies entirely inside
    /// and has become empty, clearing the parent entry before each free. The root is never freed; tables
    /// that only partly overlap the range are kept.
    /// </summary>
    /// <remarks>
    /// The caller must exclude every other user of these tables (hold the mmap lock for write; no fault,
    /// walk, reclaim or lockless reader may run), as Linux does; the freed frames go straight back to
    /// <see cref="HostMemory"/>.
    /// </remarks>
    /// <exception cref="InvalidRangeException">The range is empty, reversed, unaligned or reaches beyond 2^47.</exception>
    public void FreeEmptyTables(Hva start, Hva end) => FreeEmptyTables(start, end, gathered: null);

    /// <summary>
    /// As <see cref="FreeEmptyTables(Hva, Hva)"/>, but the unlinked tables are not freed: each one's
    /// <see cref="FrameFlags.PageTable"/> flag is cleared and its pfn (holding its one reference) is added to
    /// <paramref name="gathered"/>, for the caller to <see cref="HostMemory.Put"/> after the TLB flush — Linux
    /// frees page tables through the mmu_gather (<c>pte_free_tlb</c>), after the flush, because a CPU's
    /// paging-structure caches may still point into them until then.
    /// </summary>
    /// <param name="start">Inclusive, page-aligned start.</param>
    /// <param name="end">Exclusive, page-aligned end, at most 2^47.</param>
    /// <param name="gathered">Receives the unlinked table frames; null frees them at once.</param>
    /// <exception cref="InvalidRangeException">The range is empty, reversed, unaligned or reaches beyond 2^47.</exception>
    public unsafe void FreeEmptyTables(Hva start, Hva end, List<Pfn>? gathered) // unsafe: scans table frames through raw pointers.
    {
        CheckRange(start, end, nameof(start));
        ThrowIfDisposed();
        lock (_populateLock)
        {
            FreeEmptyChildren(TableAt(_root), Pml4Shift, 0, start.Value, end.Value, gathered);
        }
    }

    /// <summary>Counts the leaf entries of <c>[start, end)</c> by kind (a <see cref="Walk{TVisitor}"/> that allocates nothing).</summary>
    /// <exception cref="InvalidRangeException">The range is empty, reversed, unaligned or reaches beyond 2^47.</exception>
    /// <exception cref="InvalidHostPteException">An entry is corrupt.</exception>
    public PteCounts CountEntries(Hva start, Hva end)
    {
        var visitor = default(CountingVisitor);
        Walk(start, end, allocate: false, ref visitor);
        return visitor.Counts;
    }

    /// <summary>
    /// Returns every table frame, root included, to <see cref="HostMemory"/>; idempotent. Leaf entries are
    /// dropped without touching the frames they map: zap them first (exit unmaps before it frees the page
    /// tables). No other thread may use the tables during or after the call, and the
    /// <see cref="HostMemory"/> must not be disposed yet.
    /// </summary>
    public unsafe void Dispose() // unsafe: scans table frames through raw pointers.
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        lock (_populateLock)
        {
            FreeSubtree(TableAt(_root), Pml4Shift);
            FreeTable(_root, Pml4Shift);
        }
    }

    private static void CheckAddress(Hva address, string paramName)
    {
        if (address.Value >= UserAddressLimit)
        {
            throw new InvalidRangeException(
                NotifierRule.OutsideAddressSpace,
                $"address {address} is beyond the 47-bit user address space: host page tables map [{Hva.Zero}, {UserAddressEnd})",
                paramName);
        }
    }

    private static void CheckRange(Hva start, Hva end, string paramName)
    {
        CheckAddress(start, paramName);
        InvalidRangeException.ThrowIfInvalidPageRange(start, end, paramName);
        if (end.Value > UserAddressLimit)
        {
            throw new InvalidRangeException(
                NotifierRule.OutsideAddressSpace,
                $"range [{start}, {end}) ends beyond the 47-bit user address space: host page tables map [{Hva.Zero}, {UserAddressEnd})",
                paramName);
        }
    }

    private static void CheckMove(Hva oldStart, Hva newStart, ulong pages)
    {
        if (pages == 0 || pages > UserAddressLimit >> PteShift)
        {
            throw new InvalidRangeException(
                pages == 0 ? NotifierRule.EmptyOrReversedRange : NotifierRule.OutsideAddressSpace,
                $"moving {pages} pages from {oldStart} to {newStart}: the page count must be 1 to {UserAddressLimit >> PteShift} (the 47-bit user address space)",
                nameof(pages));
        }

        CheckAddress(oldStart, nameof(oldStart));
        CheckAddress(newStart, nameof(newStart));
        var length = pages << PteShift;
        var oldEnd = oldStart + length;
        var newEnd = newStart + length;
        CheckRange(oldStart, oldEnd, nameof(oldStart));
        CheckRange(newStart, newEnd, nameof(newStart));
        if (oldStart < newEnd && newStart < oldEnd)
        {
            throw new InvalidRangeException(
                NotifierRule.OverlappingRanges,
                $"cannot move [{oldStart}, {oldEnd}) to [{newStart}, {newEnd}): the ranges overlap, and entries can only move between disjoint ranges",
                nameof(newStart));
        }
    }

    private static Pfn PfnOf(ulong entry) => new((entry & HostPte.PfnMask) >> PteShift);

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void ThrowCorruptUpperEntry(ulong entry, ulong address, int shift) =>
        throw new InvalidOperationException(
            $"host page table entry 0x{entry:x} for {new Hva(address)} at the level mapping {1UL << shift} bytes is corrupt: upper-level entries must be none or a present pointer to a table (no huge leaves)");

    /// <summary>
    /// Descends to the PTE table for <paramref name="address"/> (Volatile reads; populating when
    /// <paramref name="allocate"/>). When a level is missing and not allocated, returns false with
    /// <paramref name="holeEnd"/> the end of the hole that entry covers.
    /// </summary>
    private unsafe bool FindPteTable(ulong address, bool allocate, out ulong* table, out Pfn tablePfn, out ulong holeEnd) // unsafe: raw table pointers.
    {
        var current = TableAt(_root);
        var currentPfn = _root;
        for (var shift = Pml4Shift; shift >= PdShift; shift -= LevelBits)
        {
            var slot = current + ((address >> shift) & IndexMask);
            var entry = Volatile.Read(ref *slot);
            if (entry == 0)
            {
                if (!allocate)
                {
                    table = null;
                    tablePfn = default;
                    holeEnd = (address | ((1UL << shift) - 1)) + 1;
                    return false;
                }

                entry = Populate(slot, shift);
            }

            if ((entry & (HostPte.PresentBit | HostPte.LargePageBit)) != HostPte.PresentBit)
            {
                if (shift == PdShift && IsHugeLeaf(entry))
                {
                    // A huge leaf has no PTE table: to PTE-level users its 2 MiB reads as a hole (see ReadPmd).
                    table = null;
                    tablePfn = default;
                    holeEnd = (address | (PteTableSpan - 1)) + 1;
                    return false;
                }

                ThrowCorruptUpperEntry(entry, address, shift);
            }

            currentPfn = PfnOf(entry);
            current = TableAt(currentPfn);
        }

        table = current;
        tablePfn = currentPfn;
        holeEnd = 0;
        return true;
    }

    /// <summary>Installs a zeroed child table in the empty upper-level <paramref name="slot"/> (whose entries map 2^<paramref name="shift"/> bytes) unless another thread did.</summary>
    private unsafe ulong Populate(ulong* slot, int shift) // unsafe: the slot is a raw pointer into a table frame.
    {
        lock (_populateLock)
        {
            var entry = Volatile.Read(ref *slot);
            if (entry != 0)
            {
                return entry;
            }

            ThrowIfDisposed();
            var child = AllocateTable(shift - LevelBits);

            // The child's zeroes are written before this release store, so a reader that sees the entry sees them.
            entry = HostPte.Present(child, UpperEntryFlags).Value;
            Volatile.Write(ref *slot, entry);
            return entry;
        }
    }

    /// <summary>A zeroed frame flagged <see cref="FrameFlags.PageTable"/> for a table whose entries map 2^<paramref name="shift"/> bytes.</summary>
    private Pfn AllocateTable(int shift)
    {
        var pfn = _memory.Allocate(_node, AllocationFlags.Zero);
        _memory.SetFlags(pfn, FrameFlags.PageTable);

        // The root is not counted: it exists exactly as long as the instance is not disposed.
        if (shift != Pml4Shift)
        {
            Interlocked.Increment(ref LevelCounter(shift));
        }

        return pfn;
    }

    private void FreeTable(Pfn pfn, int shift)
    {
        UnlinkTable(pfn, shift);
        _memory.Put(pfn);
    }

    /// <summary>Makes a table frame an ordinary frame again (its one reference still held) and uncounts it.</summary>
    private void UnlinkTable(Pfn pfn, int shift)
    {
        _memory.ClearFlags(pfn, FrameFlags.PageTable);
        if (shift != Pml4Shift)
        {
            Interlocked.Decrement(ref LevelCounter(shift));
        }
    }

    private ref long LevelCounter(int shift)
    {
        switch (shift)
        {
            case PdptShift:
                return ref _pdptTables;
            case PdShift:
                return ref _pdTables;
            case PteShift:
                return ref _pteTables;
            default:
                throw new UnreachableException($"no table level has entries mapping 2^{shift} bytes");
        }
    }

    /// <summary>
    /// Frees, below <paramref name="table"/> (whose entries map 2^<paramref name="shift"/> bytes each, the
    /// first at <paramref name="tableBase"/>), the children that lie inside <c>[start, end)</c> and are empty,
    /// deepest first. Caller holds <c>_populateLock</c> and excludes every other user.
    /// </summary>
    private unsafe void FreeEmptyChildren(ulong* table, int shift, ulong tableBase, ulong start, ulong end, List<Pfn>? gathered) // unsafe: raw table pointers.
    {
        var entrySpan = 1UL << shift;
        var first = (int)((Math.Max(start, tableBase) - tableBase) >> shift);
        var last = (int)((Math.Min(end, tableBase + (entrySpan * EntriesPerTable)) - 1 - tableBase) >> shift);
        for (var i = first; i <= last; i++)
        {
            var entry = table[i];
            if (entry == 0)
            {
                continue;
            }

            var childBase = tableBase + ((ulong)i * entrySpan);
            if (shift == PdShift && IsHugeLeaf(entry))
            {
                continue; // a huge leaf is a mapping, not a table: zap it first (a range that held one was zapped)
            }

            if ((entry & (HostPte.PresentBit | HostPte.LargePageBit)) != HostPte.PresentBit)
            {
                ThrowCorruptUpperEntry(entry, childBase, shift);
            }

            var childPfn = PfnOf(entry);
            var child = TableAt(childPfn);
            if (shift > PdShift)
            {
                FreeEmptyChildren(child, shift - LevelBits, childBase, start, end, gathered);
            }

            if (childBase >= start && childBase + entrySpan <= end &&
                new ReadOnlySpan<ulong>(child, EntriesPerTable).IndexOfAnyExcept(0UL) < 0)
            {
                Volatile.Write(ref table[i], 0UL);
                if (gathered is null)
                {
                    FreeTable(childPfn, shift - LevelBits);
                }
                else
                {
                    UnlinkTable(childPfn, shift - LevelBits);
                    gathered.Add(childPfn);
                }
            }
        }
    }

    /// <summary>Frees every table below <paramref name="table"/>, clearing the entries; caller holds <c>_populateLock</c>.</summary>
    private unsafe void FreeSubtree(ulong* table, int shift) // unsafe: raw table pointers.
    {
        for (var i = 0; i < EntriesPerTable; i++)
        {
            var entry = table[i];
            if (entry == 0)
            {
                continue;
            }

            if (shift == PdShift && IsHugeLeaf(entry))
            {
                table[i] = 0; // a mapping, not a table; its frames were released by the zap that exit runs first
                continue;
            }

            var childPfn = PfnOf(entry);
            if (shift > PdShift)
            {
                FreeSubtree(TableAt(childPfn), shift - LevelBits);
            }

            table[i] = 0;
            FreeTable(childPfn, shift - LevelBits);
        }
    }

    private unsafe ulong* TableAt(Pfn pfn) => (ulong*)_memory.FrameAddress(pfn); // unsafe: a table is 512 ulong of raw arena memory.

    private void LockPair(Pfn a, Pfn b)
    {
        if (a == b)
        {
            PageTableLock.Acquire(_memory, a);
            return;
        }

        PageTableLock.Acquire(_memory, a < b ? a : b);
        PageTableLock.Acquire(_memory, a < b ? b : a);
    }

    private void UnlockPair(Pfn a, Pfn b)
    {
        PageTableLock.Release(_memory, a);
        if (a != b)
        {
            PageTableLock.Release(_memory, b);
        }
    }

    private void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
}
