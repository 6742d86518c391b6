using System.Buffers;

namespace Hypervisor.GuestMmu.Ept;

/// <content>Range operations: zap, age, young test, zap-all, count. All walk with <see cref="TdpIterator"/>.</content>
public sealed unsafe partial class EptPageTable
{
    /// <summary>
    /// Zaps every present leaf intersecting <c>[start, end)</c> (KVM's <c>zap_leafs</c>): each becomes
    /// <see cref="Spte.Empty"/>, and each that was dirty (bit 9; or writable, with A/D off) is reported to
    /// <paramref name="sink"/> before the call returns. A large leaf that overlaps the range is zapped whole.
    /// Page tables stay in place. Run it with the MMU lock held for write; flush vCPU TLBs afterwards when
    /// <see cref="ZapResult.FlushNeeded"/>.
    /// </summary>
    /// <exception cref="InvalidRangeException">The range is empty, reversed or beyond 2^36.</exception>
    public ZapResult ZapLeaves<TSink>(Gfn start, Gfn end, ref TSink sink)
        where TSink : struct, IDirtyPfnSink
    {
        EptGeometry.CheckRange(start, end);
        ThrowIfDisposed();
        var result = ZapRange(start.Value, end.Value, _dirtyMask, ref sink);
        Account(result);
        return result;
    }

    /// <summary>
    /// Zaps every present leaf intersecting <c>[start, end)</c> as <see cref="ZapLeaves{TSink}"/> does, but never
    /// looks at dirty bits and reports nothing (<see cref="ZapResult.Dirty"/> is 0): for a caller that marked each
    /// frame dirty when it mapped it writable (KVM since Linux 6.13), so a dirty leaf costs what a clean one does
    /// (vector stores, whole-table clears). The dirty bits themselves are lost with the leaves. Run it with the MMU
    /// lock held for write; flush vCPU TLBs afterwards when <see cref="ZapResult.FlushNeeded"/>.
    /// </summary>
    /// <exception cref="InvalidRangeException">The range is empty, reversed or beyond 2^36.</exception>
    public ZapResult ZapLeavesUnreported(Gfn start, Gfn end)
    {
        EptGeometry.CheckRange(start, end);
        ThrowIfDisposed();
        var discard = default(DiscardDirtySink);
        var result = ZapRange(start.Value, end.Value, dirtyMask: 0, ref discard);
        Account(result);
        return result;
    }

    /// <summary>
    /// An aging pass that needs no dirty sink: test (<paramref name="clear"/> false) in either mode, or
    /// clear with <see cref="AgingMode.AccessedBit"/>.
    /// </summary>
    /// <exception cref="ArgumentException">A clearing <see cref="AgingMode.AccessTracking"/> pass drops W and must report dirty frames: use the overload with a sink.</exception>
    /// <inheritdoc cref="AgeLeaves{TSink}" path="/exception"/>
    public AgeResult AgeLeaves(Gfn start, Gfn end, bool clear, AgingMode mode)
    {
        if (clear && mode == AgingMode.AccessTracking)
        {
            throw new ArgumentException(
                $"clearing with {mode} over [{start}, {end}) drops W from writable leaves, so their frames must be marked dirty: pass an IDirtyPfnSink", nameof(mode));
        }

        var discard = default(DiscardDirtySink);
        return AgeLeaves(start, end, clear, mode, ref discard);
    }

    /// <summary>
    /// Tests, and when <paramref name="clear"/> resets, the young state of every present leaf in
    /// <c>[start, end)</c> (KVM's <c>age_gfn_range</c> / <c>test_age_gfn</c>). Never zaps, never needs a TLB
    /// flush. <see cref="AgingMode.AccessedBit"/>: young = accessed bit set; clearing clears it.
    /// <see cref="AgingMode.AccessTracking"/>: young = not access-tracked; clearing access-tracks the leaf,
    /// first reporting it to <paramref name="sink"/> when it was writable or dirty. Run with the MMU lock
    /// held for write.
    /// </summary>
    /// <exception cref="InvalidRangeException">The range is empty, reversed or beyond 2^36.</exception>
    /// <exception cref="ArgumentException"><see cref="AgingMode.AccessedBit"/> on a table without A/D bits, or an undefined mode.</exception>
    public AgeResult AgeLeaves<TSink>(Gfn start, Gfn end, bool clear, AgingMode mode, ref TSink sink)
        where TSink : struct, IDirtyPfnSink
    {
        EptGeometry.CheckRange(start, end);
        CheckMode(mode);
        ThrowIfDisposed();
        var atomic = _policy == HardwareAdPolicy.Lockless;
        long young = 0, cleared = 0, dirty = 0;
        var it = new TdpIterator(_arena, _root, start.Value, end.Value, 1);
        while (it.MoveNext())
        {
            var level = it.Level;
            if (level == 1)
            {
                var run = it.LeafRunPointer(out var count);
                if (mode == AgingMode.AccessedBit)
                {
                    var found = EptLeafKernels.AgeAccessed(_vectorWidth, run, count, clear, atomic);
                    young += found;
                    cleared += clear ? found : 0;
                }
                else
                {
                    young += EptLeafKernels.AgeTracking(_vectorWidth, run, count, it.Gfn.Value, clear, atomic, ref sink, ref cleared, ref dirty);
                }

                it.SkipLeafRun();
                continue;
            }

            ref var entry = ref it.Entry;
            if (!TdpStep.IsLeafAt(entry, level))
            {
                continue;
            }

            if (mode == AgingMode.AccessedBit)
            {
                if (EptLeafKernels.AgeAccessedOne(ref entry, clear, atomic))
                {
                    young++;
                    cleared += clear ? 1 : 0;
                }
            }
            else if (EptLeafKernels.AgeTrackingOne(ref entry, it.Gfn.Value, level, clear, atomic, ref sink, ref cleared, ref dirty))
            {
                young++;
            }
        }

        // Writer-only counters (see Account).
        Volatile.Write(ref _ages, _ages + 1);
        Volatile.Write(ref _agedYoung, _agedYoung + young);
        Volatile.Write(ref _dirtyLeaves, _dirtyLeaves + dirty);
        return new AgeResult(young, cleared, dirty);
    }

    /// <summary>
    /// Clears the accessed bit of every present leaf in <c>[start, end)</c> (A/D bits on) and reports which pages were
    /// young: bit <c>firstBit + i</c> of <paramref name="young"/> is set for gfn <c>start + i</c> (other bits are left alone; a
    /// young large leaf sets the bits of all its pages in the range). Each run of 4 KiB leaves is first tested with the
    /// vectorised aging kernel, so an old run costs a few vector loads; a young run is then aged entry by entry to
    /// record which ones. Run with the MMU lock held for write. Returns the young leaves found.
    /// </summary>
    /// <exception cref="InvalidRangeException">The range is empty, reversed or beyond 2^36.</exception>
    /// <exception cref="ArgumentException"><paramref name="young"/> has fewer bits than the range has pages.</exception>
    /// <exception cref="InvalidOperationException">The table has no A/D bits.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="firstBit"/> is negative.</exception>
    public long ClearAccessedBitmap(Gfn start, Gfn end, Span<ulong> young, int firstBit = 0)
    {
        EptGeometry.CheckRange(start, end);
        if (!_accessDirtyEnabled)
        {
            throw new InvalidOperationException($"aging [{start}, {end}) by accessed bits needs EPT A/D bits, but this page table was created without them");
        }

        ArgumentOutOfRangeException.ThrowIfNegative(firstBit);
        if ((ulong)young.Length * 64 < (ulong)firstBit + end.Value - start.Value)
        {
            throw new ArgumentException($"a young bitmap of {young.Length} words cannot hold the {end.Value - start.Value} pages of [{start}, {end}) from bit {firstBit}", nameof(young));
        }

        ThrowIfDisposed();
        var atomic = _policy == HardwareAdPolicy.Lockless;
        long found = 0;
        var it = new TdpIterator(_arena, _root, start.Value, end.Value, 1);
        while (it.MoveNext())
        {
            var level = it.Level;
            if (level == 1)
            {
                var run = it.LeafRunPointer(out var count);
                var first = it.Gfn.Value - start.Value + (ulong)firstBit;
                if (EptLeafKernels.AgeAccessed(_vectorWidth, run, count, clear: false, atomic) != 0)
                {
                    for (var i = 0; i < count; i++)
                    {
                        if (EptLeafKernels.AgeAccessedOne(ref run[i], clear: true, atomic))
                        {
                            var bit = first + (ulong)i;
                            young[(int)(bit >> 6)] |= 1UL << (int)(bit & 63);
                            found++;
                        }
                    }
                }

                it.SkipLeafRun();
                continue;
            }

            ref var entry = ref it.Entry;
            if (TdpStep.IsLeafAt(entry, level) && EptLeafKernels.AgeAccessedOne(ref entry, clear: true, atomic))
            {
                found++;
                var leafEnd = it.Gfn.Value + (1UL << (9 * (level - 1)));
                for (var gfn = Math.Max(it.Gfn.Value, start.Value); gfn < Math.Min(leafEnd, end.Value); gfn++)
                {
                    var bit = gfn - start.Value + (ulong)firstBit;
                    young[(int)(bit >> 6)] |= 1UL << (int)(bit & 63);
                }
            }
        }

        // Writer-only counters (see Account).
        Volatile.Write(ref _ages, _ages + 1);
        Volatile.Write(ref _agedYoung, _agedYoung + found);
        return found;
    }

    /// <summary>
    /// Lockless aging of one gfn with A/D bits (KVM's <c>kvm_tdp_mmu_age_gfn_range</c> under RCU, Linux 6.14): a point
    /// walk to the leaf mapping <paramref name="gfn"/>; young when it is present with the accessed bit, which
    /// <paramref name="clear"/> then clears with one atomic AND. Safe holding the MMU lock only for read, with vCPUs
    /// and faults running: hardware and installs change entries only by compare-and-swap, so the AND never loses
    /// their bits; if the entry was replaced after the check, the AND at most makes a new leaf look old (the aging
    /// heuristic's accepted race), and it changes no bit of an empty or frozen entry.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="gfn"/> is at or beyond 2^36.</exception>
    /// <exception cref="InvalidOperationException">The table has no A/D bits (aging must access-track, under the write lock).</exception>
    public bool AgeOneAccessed(Gfn gfn, bool clear)
    {
        EptGeometry.CheckGfn(gfn, nameof(gfn));
        if (!_accessDirtyEnabled)
        {
            throw new InvalidOperationException($"aging {gfn} by its accessed bit needs EPT A/D bits, but this page table was created without them");
        }

        ThrowIfDisposed();
        var walk = new TdpPointWalk(_arena, _root, gfn.Value);
        var value = walk.Descend(1);
        var young = (value & (Spte.MmuPresentBit | Spte.AccessedBit)) == (Spte.MmuPresentBit | Spte.AccessedBit);
        if (young && clear)
        {
            Interlocked.And(ref walk.Entry, ~Spte.AccessedBit);
        }

        // Readers run this in parallel (MMU lock for read), so the counters take locked adds; writers are excluded.
        Interlocked.Increment(ref _ages);
        if (young)
        {
            Interlocked.Increment(ref _agedYoung);
        }

        return young;
    }

    /// <summary>
    /// True when the leaf mapping <paramref name="gfn"/> is young (KVM's <c>test_age_gfn</c> for one page):
    /// its accessed bit is set with A/D on, it is not access-tracked with A/D off. Lock-free.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="gfn"/> is at or beyond 2^36.</exception>
    public bool TestYoung(Gfn gfn)
    {
        var spte = Read(gfn, out _);
        var young = spte.IsPresent && (_accessDirtyEnabled ? spte.IsAccessed : !spte.IsAccessTracked);
        Interlocked.Increment(ref _youngTests);
        if (young)
        {
            Interlocked.Increment(ref _youngHits);
        }

        return young;
    }

    /// <summary>Counts the present leaves intersecting <c>[start, end)</c> (a large leaf counts once). Lock-free; exact when quiescent.</summary>
    /// <exception cref="InvalidRangeException">The range is empty, reversed or beyond 2^36.</exception>
    public long CountPresentLeaves(Gfn start, Gfn end)
    {
        EptGeometry.CheckRange(start, end);
        ThrowIfDisposed();
        long present = 0;
        var it = new TdpIterator(_arena, _root, start.Value, end.Value, 1);
        while (it.MoveNext())
        {
            if (it.Level == 1)
            {
                present += EptLeafKernels.CountPresent(_vectorWidth, it.LeafRunPointer(out var count), count);
                it.SkipLeafRun();
            }
            else if (TdpStep.IsLeafAt(Volatile.Read(ref it.Entry), it.Level))
            {
                present++;
            }
        }

        return present;
    }

    /// <summary>Counts every present leaf.</summary>
    public long CountPresentLeaves() => CountPresentLeaves(default, EptGeometry.End);

    /// <summary>Counts the present 2 MiB leaves (level 2), KVM's <c>pages_2m</c>. Lock-free; exact when quiescent.</summary>
    public long CountLargeLeaves()
    {
        ThrowIfDisposed();
        long large = 0;
        var it = new TdpIterator(_arena, _root, 0, EptGeometry.End.Value, 1);
        while (it.MoveNext())
        {
            if (it.Level == 1)
            {
                it.SkipLeafRun();
            }
            else if (it.Level == 2 && TdpStep.IsLeafAt(Volatile.Read(ref it.Entry), it.Level))
            {
                large++;
            }
        }

        return large;
    }

    /// <summary>
    /// Zaps every leaf (reporting dirty ones to <paramref name="sink"/>), then unlinks and empties every
    /// table below the root and retires it; the root stays, empty. The tables return to the arena in
    /// <see cref="ReclaimRetiredTables"/> once no lock-free walk can be inside them. Run with the MMU lock
    /// held for write (release, or a teardown).
    /// </summary>
    public ZapResult ZapAll<TSink>(ref TSink sink)
        where TSink : struct, IDirtyPfnSink
    {
        ThrowIfDisposed();
        var result = ZapAllCore(_dirtyMask, ref sink);
        Account(result);
        return result;
    }

    /// <summary>
    /// <see cref="ZapAll{TSink}"/> that never looks at dirty bits (as <see cref="ZapLeavesUnreported"/>): every leaf
    /// zapped with the clean path, nothing reported. Run with the MMU lock held for write.
    /// </summary>
    public ZapResult ZapAllUnreported()
    {
        ThrowIfDisposed();
        var discard = default(DiscardDirtySink);
        var result = ZapAllCore(dirtyMask: 0, ref discard);
        Account(result);
        return result;
    }

    /// <summary>
    /// Teardown: <see cref="ZapAll{TSink}"/> discarding dirty state, then <see cref="ReclaimRetiredTables"/>
    /// at once. Only when no vCPU can walk any more and the guest's memory is going away with it.
    /// </summary>
    public void ZapAll()
    {
        ZapAllUnreported();
        ReclaimRetiredTables();
    }

    /// <summary>
    /// Maps <c>[start, end)</c> with 4 KiB leaves to consecutive frames from <paramref name="firstPfn"/>,
    /// each <paramref name="template"/> with its pfn field replaced, creating tables as needed. For tests and
    /// benchmarks (a bulk pre-fault, not the fault path: no invalidation protocol, no invariant check, so
    /// never on a table a <c>TdpMmu</c> serves). Run with the MMU lock held for write. Returns the number of
    /// entries that were not present before.
    /// </summary>
    /// <exception cref="InvalidRangeException">The range is empty, reversed or beyond 2^36.</exception>
    /// <exception cref="ArgumentException"><paramref name="template"/> is not a present 4 KiB leaf.</exception>
    /// <exception cref="InvalidOperationException">A large leaf or a frozen entry covers part of the range.</exception>
    public long PopulateLeaves(Gfn start, Gfn end, Pfn firstPfn, Spte template)
    {
        EptGeometry.CheckRange(start, end);
        if (!template.IsPresent || template.IsLargePage)
        {
            throw new ArgumentException($"{template} is not a present 4 KiB leaf template", nameof(template));
        }

        ThrowIfDisposed();
        var bits = template.Value & ~Spte.PfnMask;
        var pfn = firstPfn.Value;
        long added = 0;
        for (var gfn = start.Value; gfn < end.Value;)
        {
            var walk = new TdpPointWalk(_arena, _root, gfn);
            if (!DescendCreatingTables(ref walk, 1, out var failure))
            {
                throw new InvalidOperationException($"{new Gfn(gfn)} cannot take a 4 KiB leaf: {failure}");
            }

            var table = walk.Table;
            var slot = walk.Slot;
            var count = (int)Math.Min((ulong)(EptGeometry.EntriesPerTable - slot), end.Value - gfn);
            var counts = EptArena.CountsOf(table);
            NoteMayHoldDirty(counts, template.Value);
            var addedHere = 0;
            for (var i = 0; i < count; i++)
            {
                addedHere += (int)((~table[slot + i] & Spte.MmuPresentBit) >> 11);
                table[slot + i] = bits | ((pfn + (ulong)i) << Spte.PfnShift);
            }

            counts->Present += addedHere;
            added += addedHere;

            gfn += (ulong)count;
            pfn += (ulong)count;
        }

        Interlocked.Add(ref _leavesAdded, added);
        return added;
    }

    /// <summary>The zap walk; <paramref name="dirtyMask"/> is <c>_dirtyMask</c>, or 0 to report nothing and treat every leaf as clean.</summary>
    private ZapResult ZapRange<TSink>(ulong start, ulong end, ulong dirtyMask, ref TSink sink)
        where TSink : struct, IDirtyPfnSink
    {
        var atomic = _policy == HardwareAdPolicy.Lockless;
        long zapped = 0, frames = 0, dirty = 0;
        if (((start ^ (end - 1)) >> EptGeometry.BitsPerLevel) == 0)
        {
            // The whole range lies in one level-1 table (a notifier range of up to 2 MiB, the common
            // invalidation): the point walk finds the table without the range walk's bookkeeping. A large
            // leaf or a missing table on the way takes the range walk below.
            var walk = new TdpPointWalk(_arena, _root, start);
            if (walk.TryDescendTo(1))
            {
                zapped = ZapLeafRun(walk.Table, walk.Slot, (int)(end - start), start, dirtyMask, atomic, ref sink, ref dirty);
                return new ZapResult(zapped, zapped, dirty, 0);
            }
        }

        var it = new TdpIterator(_arena, _root, start, end, 1);
        while (it.MoveNext())
        {
            var level = it.Level;
            if (level == 1)
            {
                var run = it.LeafRunPointer(out var count);
                var leaves = ZapLeafRun(run - it.Slot, it.Slot, count, it.Gfn.Value, dirtyMask, atomic, ref sink, ref dirty);
                zapped += leaves;
                frames += leaves;
                it.SkipLeafRun();
                continue;
            }

            ref var entry = ref it.Entry;
            if (TdpStep.IsLeafAt(entry, level) && EptLeafKernels.ZapOne(ref entry, it.Gfn.Value, level, dirtyMask, atomic, ref sink, ref dirty))
            {
                zapped++;
                frames += (long)EptGeometry.FramesPerEntry(level);
            }
        }

        return new ZapResult(zapped, frames, dirty, 0);
    }

    /// <summary>
    /// Zaps <c>table[slot..slot+count)</c> and keeps the table's counts exact. A whole table is decided from
    /// its counts first: nothing present, skip it unread; every entry present and none dirty (hint trusted,
    /// i.e. not <see cref="HardwareAdPolicy.Lockless"/>), clear it with plain stores of zero (as fast as
    /// a memset), the stores a zap would make; with <paramref name="dirtyMask"/> 0 (nothing reported) a full table
    /// is cleared so whatever its dirty hint says. Anything else goes through the kernels. Write lock held.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private long ZapLeafRun<TSink>(ulong* table, int slot, int count, ulong firstGfn, ulong dirtyMask, bool atomic, ref TSink sink, ref long dirty)
        where TSink : struct, IDirtyPfnSink
    {
        var counts = EptArena.CountsOf(table);
        var whole = count == EptGeometry.EntriesPerTable;
        if (whole)
        {
            var present = counts->Present;
            if (present == 0)
            {
                _emptyTablesSkipped++;
                return 0;
            }

            if (present == EptGeometry.EntriesPerTable && (counts->MayHoldDirty == 0 || dirtyMask == 0) && !atomic)
            {
                EptLeafKernels.ClearTable(_vectorWidth, table);
                counts->Present = 0;
                _wholeTableClears++;
                return EptGeometry.EntriesPerTable;
            }
        }

        var zapped = EptLeafKernels.Zap(_vectorWidth, table + slot, count, firstGfn, dirtyMask, atomic, ref sink, ref dirty);
        counts->Present -= (int)zapped;
        if (whole)
        {
            // Nothing present is left, so nothing in the table can be dirty.
            counts->MayHoldDirty = 0;
        }

        return zapped;
    }

    private ZapResult ZapAllCore<TSink>(ulong dirtyMask, ref TSink sink)
        where TSink : struct, IDirtyPfnSink
    {
        var leaves = ZapRange(0, EptGeometry.GfnLimit, dirtyMask, ref sink);

        // Collect every table below the root before emptying any: emptying a table first would hide its children.
        var tables = ArrayPool<uint>.Shared.Rent(64);
        var count = 0;
        try
        {
            var it = new TdpIterator(_arena, _root, 0, EptGeometry.GfnLimit, 2);
            while (it.MoveNext())
            {
                var entry = it.Entry;
                if (TdpStep.IsPresentNonLeaf(entry, it.Level))
                {
                    if (count == tables.Length)
                    {
                        var grown = ArrayPool<uint>.Shared.Rent(count * 2);
                        tables.AsSpan(0, count).CopyTo(grown);
                        ArrayPool<uint>.Shared.Return(tables);
                        tables = grown;
                    }

                    tables[count++] = TdpStep.TableIndexOf(entry);
                }
            }

            // Unlink from the root first, then empty each table so a walker already inside one sees non-present entries.
            ClearEntries(new Span<ulong>(_root, EptGeometry.EntriesPerTable));
            for (var i = 0; i < count; i++)
            {
                ClearEntries(_arena.Table(tables[i]));
                Retire(tables[i]);
            }
        }
        finally
        {
            ArrayPool<uint>.Shared.Return(tables);
        }

        Interlocked.Add(ref _tables, -count);
        return leaves with { TablesFreed = count };
    }

    private static void ClearEntries(Span<ulong> table)
    {
        // Entry by entry: each 8-byte store is atomic, so a lock-free reader sees the old value or 0.
        for (var i = 0; i < table.Length; i++)
        {
            Volatile.Write(ref table[i], 0);
        }
    }

    private void Account(ZapResult result)
    {
        // Writer-only counters: zaps and ages hold the MMU lock for write, so plain stores suffice (readers
        // may see them a little late). _zappedLeaves is also the zap side of the present-leaf count (see the
        // field comment): no installer can run while the write lock is held, so no locked instruction is needed.
        Volatile.Write(ref _zaps, _zaps + 1);
        if (result.Zapped != 0)
        {
            Volatile.Write(ref _zappedLeaves, _zappedLeaves + result.Zapped);
            Volatile.Write(ref _dirtyLeaves, _dirtyLeaves + result.Dirty);
        }
    }

    private void CheckMode(AgingMode mode)
    {
        if (!Enum.IsDefined(mode))
        {
            throw new ArgumentException($"aging mode {mode} does not exist: use AccessedBit or AccessTracking", nameof(mode));
        }

        if (mode == AgingMode.AccessedBit && !_accessDirtyEnabled)
        {
            throw new ArgumentException(
                "aging with AccessedBit needs EPT A/D bits, but this page table was created without them: hardware never sets the accessed bit, so use AccessTracking",
                nameof(mode));
        }
    }
}
