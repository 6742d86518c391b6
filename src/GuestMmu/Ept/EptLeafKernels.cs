using System.Runtime.Intrinsics;

namespace Hypervisor.GuestMmu.Ept;

/// <summary>
/// Bulk work on a run of level-1 entries (a leaf-table span the <see cref="TdpIterator"/> exposes): zap,
/// age, count. Each operation has a scalar reference and one vector kernel shared by the three widths;
/// the caller passes the width (each <see cref="EptPageTable"/> has its own,
/// <see cref="EptPageTable.VectorWidth"/>). All paths give identical results, entries and
/// sink calls (the sink sees dirty frames in ascending gfn order on every path).
/// </summary>
/// <remarks>
/// Concurrency (see <see cref="HardwareAdPolicy"/>): callers hold the guest MMU lock for write. With
/// <c>atomic</c> false the kernels rewrite entries with plain stores, including whole-vector stores that
/// write back unchanged lanes; that is sound because hardware may meanwhile only set an accessed bit by
/// compare-exchange (losing it is harmless). With <c>atomic</c> true, lanes that hardware may still change
/// in a way that matters are rewritten one by one with an interlocked instruction.
/// </remarks>
internal static unsafe class EptLeafKernels // unsafe: kernels run over native table memory by pointer.
{
    private const ulong Present = Spte.MmuPresentBit;
    private const ulong Accessed = Spte.AccessedBit;
    private const ulong Dirty = Spte.DirtyBit;
    private const ulong MayBecomeWritable = Spte.WritableBit | Spte.MmuWritableBit;
    private const ulong AccessTrackCleared = Spte.PermissionMask | Spte.AccessedBit;
    private const int PresentShift = 11;
    private const int AccessedShift = 8;

    // Present is bit 11 and accessed bit 8: (v >> 3) lines the present bit up with the accessed bit.
    private const int PresentToAccessedShift = PresentShift - AccessedShift;

    // --------------------------------------------------------------------------------------------------
    // Zap: every present entry becomes Empty; non-present entries are left as they are.
    // --------------------------------------------------------------------------------------------------

    /// <summary>
    /// Zaps the present entries of <c>entries[0..count)</c> (gfns from <paramref name="firstGfn"/>), reporting
    /// to <paramref name="sink"/> each one with a bit of <paramref name="dirtyMask"/> set. Returns the
    /// number zapped; adds the number reported to <paramref name="dirty"/>.
    /// </summary>
    /// <remarks>With <c>atomic</c>, every present entry that could still gain a dirty bit (W or MMU-writable set, D clear) is exchanged atomically.</remarks>
    public static long Zap<TSink>(EptVectorWidth width, ulong* entries, int count, ulong firstGfn, ulong dirtyMask, bool atomic, ref TSink sink, ref long dirty)
        where TSink : struct, IDirtyPfnSink =>
        width switch
        {
            EptVectorWidth.Vector512 => ZapVector<VectorOps512, Vector512<ulong>, TSink>(entries, count, firstGfn, dirtyMask, atomic, ref sink, ref dirty),
            EptVectorWidth.Vector256 => ZapVector<VectorOps256, Vector256<ulong>, TSink>(entries, count, firstGfn, dirtyMask, atomic, ref sink, ref dirty),
            EptVectorWidth.Vector128 => ZapVector<VectorOps128, Vector128<ulong>, TSink>(entries, count, firstGfn, dirtyMask, atomic, ref sink, ref dirty),
            _ => ZapScalarPath(entries, count, firstGfn, dirtyMask, atomic, ref sink, ref dirty),
        };

    /// <summary>Zaps one entry (the scalar step, also used for large leaves). Returns true when it was present.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool ZapOne<TSink>(ref ulong entry, ulong gfn, int level, ulong dirtyMask, bool atomic, ref TSink sink, ref long dirty)
        where TSink : struct, IDirtyPfnSink
    {
        var value = entry;
        if ((value & Present) == 0)
        {
            return false;
        }

        if (atomic && MayGainDirty(value))
        {
            // Hardware only adds A/D bits to a present entry, so the exchanged value is still present.
            value = Interlocked.Exchange(ref entry, 0);
        }
        else
        {
            entry = 0;
        }

        if ((value & dirtyMask) != 0)
        {
            dirty++;
            sink.MarkDirty(new Gfn(gfn), PfnOf(value), level);
        }

        return true;
    }

    /// <summary>
    /// The scalar path: four entries per step, cleared with plain stores when all four are present and none
    /// needs anything else (a bit of <paramref name="dirtyMask"/>, or with <paramref name="atomic"/> a bit that
    /// lets it still gain D), else entry by entry with <see cref="ZapOne{TSink}"/>. The vector paths use the plain loop
    /// (<see cref="ZapScalar"/>) for their tails and slow groups, where this check would only fail.
    /// </summary>
    private static long ZapScalarPath<TSink>(ulong* entries, int count, ulong firstGfn, ulong dirtyMask, bool atomic, ref TSink sink, ref long dirty)
        where TSink : struct, IDirtyPfnSink
    {
        // Same rule as the vector hot loop: with D or (when atomic) W / MMU-writable in no entry, nothing can
        // be dirty now or become dirty during the store, so plain stores lose nothing.
        var slowBits = dirtyMask | (atomic ? MayBecomeWritable : 0);
        long zapped = 0;
        var i = 0;

        // After a group fails the check, the next groups skip it (a dirty or sparse table would fail it every
        // time and pay for it on top of the per-entry work).
        const int SkipAfterMiss = 8;
        var groupsUnchecked = 0;
        for (; i <= count - 4; i += 4)
        {
            if (groupsUnchecked == 0)
            {
                var a = entries[i];
                var b = entries[i + 1];
                var c = entries[i + 2];
                var d = entries[i + 3];
                if ((a & b & c & d & Present) != 0 && ((a | b | c | d) & slowBits) == 0)
                {
                    entries[i] = 0;
                    entries[i + 1] = 0;
                    entries[i + 2] = 0;
                    entries[i + 3] = 0;
                    zapped += 4;
                    continue;
                }

                groupsUnchecked = SkipAfterMiss;
            }
            else
            {
                groupsUnchecked--;
            }

            for (var j = i; j < i + 4; j++)
            {
                if (ZapOne(ref entries[j], firstGfn + (ulong)j, 1, dirtyMask, atomic, ref sink, ref dirty))
                {
                    zapped++;
                }
            }
        }

        for (; i < count; i++)
        {
            if (ZapOne(ref entries[i], firstGfn + (ulong)i, 1, dirtyMask, atomic, ref sink, ref dirty))
            {
                zapped++;
            }
        }

        return zapped;
    }

    private static long ZapScalar<TSink>(ulong* entries, int count, ulong firstGfn, ulong dirtyMask, bool atomic, ref TSink sink, ref long dirty)
        where TSink : struct, IDirtyPfnSink
    {
        long zapped = 0;
        for (var i = 0; i < count; i++)
        {
            if (ZapOne(ref entries[i], firstGfn + (ulong)i, 1, dirtyMask, atomic, ref sink, ref dirty))
            {
                zapped++;
            }
        }

        return zapped;
    }

    /// <summary>
    /// Alternates the call-free hot loop (<see cref="ZapHot"/>), which clears groups that need nothing else,
    /// with <see cref="ZapSlowRun"/> for consecutive groups that must report or exchange; the tail shorter
    /// than a vector goes to <see cref="ZapScalar"/>.
    /// </summary>
    private static long ZapVector<TOps, TVec, TSink>(ulong* entries, int count, ulong firstGfn, ulong dirtyMask, bool atomic, ref TSink sink, ref long dirty)
        where TOps : struct, IVectorOps<TVec>
        where TVec : struct
        where TSink : struct, IDirtyPfnSink
    {
        // A lane needs the slow path when it is present and dirty (D is in every dirty mask), or, when atomic,
        // present with W or MMU-writable (with D clear it could still gain D; with D set it is dirty anyway).
        var slowBits = dirtyMask | (atomic ? MayBecomeWritable : 0);
        long zapped = 0;
        var i = 0;
        while (count - i >= TOps.Lanes)
        {
            i += ZapHot<TOps, TVec>(entries + i, count - i, slowBits, ref zapped);
            if (count - i < TOps.Lanes)
            {
                break;
            }

            // The hot loop stopped on a slow group, so this consumes at least one group.
            i += ZapSlowRun<TOps, TVec, TSink>(entries + i, count - i, firstGfn + (ulong)i, dirtyMask, slowBits, atomic, ref sink, ref dirty, ref zapped);
        }

        return zapped + ZapScalar(entries + i, count - i, firstGfn + (ulong)i, dirtyMask, atomic, ref sink, ref dirty);
    }

    /// <summary>
    /// Clears whole groups with one vector store each until a group has a present lane with a bit of
    /// <paramref name="slowBits"/> set, or fewer than a vector's lanes remain. Makes no call, so the JIT keeps
    /// every vector in a register (a call in the loop would make it spill them to the stack each step).
    /// Returns the number of entries consumed; adds the present ones to <paramref name="zapped"/>.
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static int ZapHot<TOps, TVec>(ulong* entries, int count, ulong slowBits, ref long zapped)
        where TOps : struct, IVectorOps<TVec>
        where TVec : struct
    {
        var slow = TOps.Broadcast(slowBits);
        var present = TOps.Broadcast(Present);
        var lanes = TOps.Lanes;
        var presentLanesSum = TOps.Zero;
        long denseEntries = 0;
        var i = 0;

        // Two groups per step (fewer branches); a pair with a slow lane drops to the one-group loop below,
        // which takes the pair's first group if it can and stops at the slow one.
        for (; i <= count - (2 * lanes); i += 2 * lanes)
        {
            var first = TOps.Load(entries + i);
            var second = TOps.Load(entries + i + lanes);

            // Dense step (the common case of a populated range): every lane present (bit 11 survives the AND)
            // and no lane with a slow bit (none in the OR). Then every lane becomes Empty, counted in bulk.
            if (TOps.IsZero(TOps.Or(TOps.AndNot(present, TOps.And(first, second)), TOps.And(TOps.Or(first, second), slow))))
            {
                TOps.Store(TOps.Zero, entries + i);
                TOps.Store(TOps.Zero, entries + i + lanes);
                denseEntries += 2 * lanes;
                continue;
            }

            var firstPresent = TOps.BitLanes(first, PresentShift);
            var secondPresent = TOps.BitLanes(second, PresentShift);
            if (!TOps.IsZero(TOps.Or(TOps.And(TOps.And(first, slow), firstPresent), TOps.And(TOps.And(second, slow), secondPresent))))
            {
                break;
            }

            // Groups with nothing present are left alone, so zapping an already-empty table dirties no cache line.
            if (TOps.IsZero(TOps.Or(firstPresent, secondPresent)))
            {
                continue;
            }

            // Non-present lanes are written back unchanged: hardware never writes a non-present entry.
            TOps.Store(TOps.AndNot(first, firstPresent), entries + i);
            TOps.Store(TOps.AndNot(second, secondPresent), entries + i + lanes);

            // Present lanes are all ones (-1): subtracting counts them.
            presentLanesSum = TOps.Subtract(TOps.Subtract(presentLanesSum, firstPresent), secondPresent);
        }

        for (; i <= count - lanes; i += lanes)
        {
            var value = TOps.Load(entries + i);
            var presentLanes = TOps.BitLanes(value, PresentShift);
            if (!TOps.IsZero(TOps.And(TOps.And(value, slow), presentLanes)))
            {
                break;
            }

            if (!TOps.IsZero(presentLanes))
            {
                TOps.Store(TOps.AndNot(value, presentLanes), entries + i);
                presentLanesSum = TOps.Subtract(presentLanesSum, presentLanes);
            }
        }

        zapped += denseEntries + (long)TOps.Sum(presentLanesSum);
        return i;
    }

    /// <summary>
    /// Zaps consecutive groups that must report dirty lanes or exchange lanes atomically, entry by entry
    /// (<see cref="ZapScalar"/>), and stops before the first group the hot loop can take. Returns the
    /// number of entries consumed.
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static int ZapSlowRun<TOps, TVec, TSink>(
        ulong* entries, int count, ulong firstGfn, ulong dirtyMask, ulong slowBits, bool atomic, ref TSink sink, ref long dirty, ref long zapped)
        where TOps : struct, IVectorOps<TVec>
        where TVec : struct
        where TSink : struct, IDirtyPfnSink
    {
        var lanes = TOps.Lanes;
        var i = 0;
        for (; i <= count - lanes; i += lanes)
        {
            var value = TOps.Load(entries + i);
            if (TOps.IsZero(TOps.And(TOps.And(value, TOps.Broadcast(slowBits)), TOps.BitLanes(value, PresentShift))))
            {
                break;
            }

            zapped += ZapScalar(entries + i, lanes, firstGfn + (ulong)i, dirtyMask, atomic, ref sink, ref dirty);
        }

        return i;
    }

    /// <summary>
    /// Empties all 512 entries of a table known to need nothing but the stores (every entry present and
    /// clean): aligned whole-vector stores of zero, as the zap kernels make, rather than a library memset
    /// whose store width a lock-free walker could observe torn mid-entry.
    /// </summary>
    public static void ClearTable(EptVectorWidth width, ulong* table)
    {
        switch (width)
        {
            case EptVectorWidth.Vector512:
                ClearTableVector<VectorOps512, Vector512<ulong>>(table);
                break;
            case EptVectorWidth.Vector256:
                ClearTableVector<VectorOps256, Vector256<ulong>>(table);
                break;
            case EptVectorWidth.Vector128:
                ClearTableVector<VectorOps128, Vector128<ulong>>(table);
                break;
            default:
                for (var i = 0; i < EptGeometry.EntriesPerTable; i += 4)
                {
                    table[i] = 0;
                    table[i + 1] = 0;
                    table[i + 2] = 0;
                    table[i + 3] = 0;
                }

                break;
        }
    }

    private static void ClearTableVector<TOps, TVec>(ulong* table)
        where TOps : struct, IVectorOps<TVec>
        where TVec : struct
    {
        var zero = TOps.Zero;
        var step = 4 * TOps.Lanes;
        for (var i = 0; i < EptGeometry.EntriesPerTable; i += step)
        {
            TOps.Store(zero, table + i);
            TOps.Store(zero, table + i + TOps.Lanes);
            TOps.Store(zero, table + i + (2 * TOps.Lanes));
            TOps.Store(zero, table + i + (3 * TOps.Lanes));
        }
    }

    // --------------------------------------------------------------------------------------------------
    // Age with A/D bits on: young = present and accessed; clearing clears the accessed bit only.
    // --------------------------------------------------------------------------------------------------

    /// <summary>Counts the young entries of <c>entries[0..count)</c> and, when <paramref name="clear"/>, clears their accessed bit.</summary>
    public static long AgeAccessed(EptVectorWidth width, ulong* entries, int count, bool clear, bool atomic) =>
        width switch
        {
            EptVectorWidth.Vector512 => AgeAccessedVector<VectorOps512, Vector512<ulong>>(entries, count, clear, atomic),
            EptVectorWidth.Vector256 => AgeAccessedVector<VectorOps256, Vector256<ulong>>(entries, count, clear, atomic),
            EptVectorWidth.Vector128 => AgeAccessedVector<VectorOps128, Vector128<ulong>>(entries, count, clear, atomic),
            _ => AgeAccessedScalar(entries, count, clear, atomic),
        };

    /// <summary>The scalar aging step with A/D bits on (also used for large leaves). Returns true when young.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool AgeAccessedOne(ref ulong entry, bool clear, bool atomic)
    {
        var value = entry;
        if ((value & (Present | Accessed)) != (Present | Accessed))
        {
            return false;
        }

        if (clear)
        {
            if (atomic)
            {
                Interlocked.And(ref entry, ~Accessed);
            }
            else
            {
                entry = value & ~Accessed;
            }
        }

        return true;
    }

    private static long AgeAccessedScalar(ulong* entries, int count, bool clear, bool atomic)
    {
        long young = 0;
        for (var i = 0; i < count; i++)
        {
            if (AgeAccessedOne(ref entries[i], clear, atomic))
            {
                young++;
            }
        }

        return young;
    }

    private static long AgeAccessedVector<TOps, TVec>(ulong* entries, int count, bool clear, bool atomic)
        where TOps : struct, IVectorOps<TVec>
        where TVec : struct
    {
        var accessed = TOps.Broadcast(Accessed);
        var lanes = TOps.Lanes;
        var youngLanes = TOps.Zero;
        var i = 0;
        for (; i <= count - lanes; i += lanes)
        {
            var value = TOps.Load(entries + i);
            var young = TOps.And(TOps.And(value, TOps.ShiftRight(value, PresentToAccessedShift)), accessed);
            if (TOps.IsZero(young))
            {
                continue;
            }

            youngLanes = TOps.Add(youngLanes, TOps.ShiftRight(young, AccessedShift));
            if (!clear)
            {
                continue;
            }

            if (atomic)
            {
                var mask = ~TOps.TopBits(TOps.EqualsZero(young)) & LaneMask(lanes);
                while (mask != 0)
                {
                    Interlocked.And(ref entries[i + BitOperations.TrailingZeroCount(mask)], ~Accessed);
                    mask &= mask - 1;
                }
            }
            else
            {
                TOps.Store(TOps.Xor(value, young), entries + i);
            }
        }

        return (long)TOps.Sum(youngLanes) + AgeAccessedScalar(entries + i, count - i, clear, atomic);
    }

    // --------------------------------------------------------------------------------------------------
    // Age with A/D bits off: young = present and not access-tracked; clearing makes it access-tracked.
    // --------------------------------------------------------------------------------------------------

    /// <summary>
    /// Counts the young entries of <c>entries[0..count)</c> (present, not access-tracked) and, when
    /// <paramref name="clear"/>, access-tracks them, first reporting each one that was writable or dirty.
    /// Adds the entries made old to <paramref name="cleared"/> (with <paramref name="atomic"/> a lost
    /// compare-exchange is not retried, as KVM's lockless aging does not).
    /// </summary>
    public static long AgeTracking<TSink>(EptVectorWidth width, ulong* entries, int count, ulong firstGfn, bool clear, bool atomic, ref TSink sink, ref long cleared, ref long dirty)
        where TSink : struct, IDirtyPfnSink =>
        width switch
        {
            EptVectorWidth.Vector512 => AgeTrackingVector<VectorOps512, Vector512<ulong>, TSink>(entries, count, firstGfn, clear, atomic, ref sink, ref cleared, ref dirty),
            EptVectorWidth.Vector256 => AgeTrackingVector<VectorOps256, Vector256<ulong>, TSink>(entries, count, firstGfn, clear, atomic, ref sink, ref cleared, ref dirty),
            EptVectorWidth.Vector128 => AgeTrackingVector<VectorOps128, Vector128<ulong>, TSink>(entries, count, firstGfn, clear, atomic, ref sink, ref cleared, ref dirty),
            _ => AgeTrackingScalar(entries, count, firstGfn, clear, atomic, ref sink, ref cleared, ref dirty),
        };

    /// <summary>The scalar access-tracking step (also used for large leaves). Returns true when young.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool AgeTrackingOne<TSink>(ref ulong entry, ulong gfn, int level, bool clear, bool atomic, ref TSink sink, ref long cleared, ref long dirty)
        where TSink : struct, IDirtyPfnSink
    {
        var value = entry;
        if ((value & Present) == 0 || (value & Spte.PermissionMask) == 0)
        {
            return false;
        }

        if (clear)
        {
            if ((value & (Spte.WritableBit | Dirty)) != 0)
            {
                // W is about to go: the guest may have written through it.
                dirty++;
                sink.MarkDirty(new Gfn(gfn), PfnOf(value), level);
            }

            var tracked = Spte.AccessTrack(value);
            if (!atomic)
            {
                entry = tracked;
                cleared++;
            }
            else if (Interlocked.CompareExchange(ref entry, tracked, value) == value)
            {
                cleared++;
            }
        }

        return true;
    }

    private static long AgeTrackingScalar<TSink>(ulong* entries, int count, ulong firstGfn, bool clear, bool atomic, ref TSink sink, ref long cleared, ref long dirty)
        where TSink : struct, IDirtyPfnSink
    {
        long young = 0;
        for (var i = 0; i < count; i++)
        {
            if (AgeTrackingOne(ref entries[i], firstGfn + (ulong)i, 1, clear, atomic, ref sink, ref cleared, ref dirty))
            {
                young++;
            }
        }

        return young;
    }

    /// <summary>
    /// Alternates the call-free <see cref="AgeTrackingHot"/> (groups whose young lanes need no report and
    /// no compare-and-swap) with the scalar step for one group that does.
    /// </summary>
    private static long AgeTrackingVector<TOps, TVec, TSink>(ulong* entries, int count, ulong firstGfn, bool clear, bool atomic, ref TSink sink, ref long cleared, ref long dirty)
        where TOps : struct, IVectorOps<TVec>
        where TVec : struct
        where TSink : struct, IDirtyPfnSink
    {
        long young = 0;
        var i = 0;
        while (count - i >= TOps.Lanes)
        {
            i += AgeTrackingHot<TOps, TVec>(entries + i, count - i, clear, atomic, ref young, ref cleared);
            if (count - i < TOps.Lanes)
            {
                break;
            }

            young += AgeTrackingScalar(entries + i, TOps.Lanes, firstGfn + (ulong)i, clear, atomic, ref sink, ref cleared, ref dirty);
            i += TOps.Lanes;
        }

        return young + AgeTrackingScalar(entries + i, count - i, firstGfn + (ulong)i, clear, atomic, ref sink, ref cleared, ref dirty);
    }

    /// <summary>
    /// Counts (and when clearing, access-tracks with one vector store) whole groups until one has a young
    /// lane that must be reported (writable or dirty) or, when <paramref name="atomic"/>, compare-and-swapped.
    /// Makes no call. Returns the entries consumed.
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static int AgeTrackingHot<TOps, TVec>(ulong* entries, int count, bool clear, bool atomic, ref long young, ref long cleared)
        where TOps : struct, IVectorOps<TVec>
        where TVec : struct
    {
        var permissions = TOps.Broadcast(Spte.PermissionMask);
        var writableOrDirty = TOps.Broadcast(clear ? Spte.WritableBit | Dirty : 0);
        var readable = TOps.Broadcast(Spte.ReadableBit);
        var executable = TOps.Broadcast(Spte.ExecutableBit);
        var trackCleared = TOps.Broadcast(AccessTrackCleared);
        var stopOnAnyYoung = clear && atomic;
        var lanes = TOps.Lanes;
        var youngLanesSum = TOps.Zero;
        var i = 0;
        for (; i <= count - lanes; i += lanes)
        {
            var value = TOps.Load(entries + i);

            // Young: present, and R, W or X still set (not access-tracked).
            var youngLanes = TOps.AndNot(TOps.BitLanes(value, PresentShift), TOps.EqualsZero(TOps.And(value, permissions)));
            if (TOps.IsZero(youngLanes))
            {
                continue;
            }

            if (stopOnAnyYoung || !TOps.IsZero(TOps.And(TOps.And(value, writableOrDirty), youngLanes)))
            {
                break;
            }

            youngLanesSum = TOps.Subtract(youngLanesSum, youngLanes);
            if (clear)
            {
                var tracked = TOps.Or(
                    TOps.AndNot(value, trackCleared),
                    TOps.Or(TOps.ShiftLeft(TOps.And(value, readable), 54), TOps.ShiftLeft(TOps.And(value, executable), 53)));
                TOps.Store(TOps.Select(youngLanes, tracked, value), entries + i);
            }
        }

        var found = (long)TOps.Sum(youngLanesSum);
        young += found;
        cleared += clear ? found : 0;
        return i;
    }

    // --------------------------------------------------------------------------------------------------
    // Count.
    // --------------------------------------------------------------------------------------------------

    /// <summary>The number of present entries in <c>entries[0..count)</c>.</summary>
    public static long CountPresent(EptVectorWidth width, ulong* entries, int count) =>
        width switch
        {
            EptVectorWidth.Vector512 => CountPresentVector<VectorOps512, Vector512<ulong>>(entries, count),
            EptVectorWidth.Vector256 => CountPresentVector<VectorOps256, Vector256<ulong>>(entries, count),
            EptVectorWidth.Vector128 => CountPresentVector<VectorOps128, Vector128<ulong>>(entries, count),
            _ => CountPresentScalar(entries, count),
        };

    private static long CountPresentScalar(ulong* entries, int count)
    {
        long present = 0;
        for (var i = 0; i < count; i++)
        {
            present += (long)((entries[i] & Present) >> PresentShift);
        }

        return present;
    }

    private static long CountPresentVector<TOps, TVec>(ulong* entries, int count)
        where TOps : struct, IVectorOps<TVec>
        where TVec : struct
    {
        var present = TOps.Broadcast(Present);
        var sum = TOps.Zero;
        var i = 0;
        for (; i <= count - TOps.Lanes; i += TOps.Lanes)
        {
            sum = TOps.Add(sum, TOps.ShiftRight(TOps.And(TOps.Load(entries + i), present), PresentShift));
        }

        return (long)TOps.Sum(sum) + CountPresentScalar(entries + i, count - i);
    }

    // --------------------------------------------------------------------------------------------------

    /// <summary>True when hardware (or a lockless W restore followed by a write) could still set D on the entry.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static bool MayGainDirty(ulong value) => (value & MayBecomeWritable) != 0 && (value & Dirty) == 0;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Pfn PfnOf(ulong value) => new((value & Spte.PfnMask) >> Spte.PfnShift);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static uint LaneMask(int lanes) => (1u << lanes) - 1;
}
