using System.Runtime.Intrinsics;

namespace Hypervisor.GuestMmu.Ept;

/// <summary>
/// Bulk work on a run of level-1 entries (a leaf-table span the <see cref="TdpIterator"/> exposes): zap,
/// age, count. Each operation has a scalar reference and one vector kernel shared by the three widths;
/// <see cref="EptVectorPath.Current"/> picks one per call. All paths give identical results, entries and
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
    public static long Zap<TSink>(ulong* entries, int count, ulong firstGfn, ulong dirtyMask, bool atomic, ref TSink sink, ref long dirty)
        where TSink : struct, IDirtyPfnSink =>
        EptVectorPath.Current switch
        {
            EptVectorWidth.Vector512 => ZapVector<VectorOps512, Vector512<ulong>, TSink>(entries, count, firstGfn, dirtyMask, atomic, ref sink, ref dirty),
            EptVectorWidth.Vector256 => ZapVector<VectorOps256, Vector256<ulong>, TSink>(entries, count, firstGfn, dirtyMask, atomic, ref sink, ref dirty),
            EptVectorWidth.Vector128 => ZapVector<VectorOps128, Vector128<ulong>, TSink>(entries, count, firstGfn, dirtyMask, atomic, ref sink, ref dirty),
            _ => ZapScalar(entries, count, firstGfn, dirtyMask, atomic, ref sink, ref dirty),
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

    private static long ZapVector<TOps, TVec, TSink>(ulong* entries, int count, ulong firstGfn, ulong dirtyMask, bool atomic, ref TSink sink, ref long dirty)
        where TOps : struct, IVectorOps<TVec>
        where TVec : struct
        where TSink : struct, IDirtyPfnSink
    {
        var present = TOps.Broadcast(Present);
        var dirtyBits = TOps.Broadcast(dirtyMask);
        var canGain = TOps.Broadcast(MayBecomeWritable);
        var dirtyBit = TOps.Broadcast(Dirty);
        var lanes = TOps.Lanes;
        var zappedLanes = TOps.Zero;
        long zappedScalar = 0;
        var i = 0;
        for (; i <= count - lanes; i += lanes)
        {
            var value = TOps.Load(entries + i);
            var presentBits = TOps.And(value, present);
            if (TOps.IsZero(presentBits))
            {
                continue;
            }

            var notPresent = TOps.EqualsZero(presentBits);
            if (atomic)
            {
                // Lanes that are present, could be made writable or are, and have no D yet: hand the group to the scalar step.
                var volatileLanes = TOps.AndNot(
                    TOps.AndNot(TOps.EqualsZero(TOps.And(value, dirtyBit)), TOps.EqualsZero(TOps.And(value, canGain))),
                    notPresent);
                if (!TOps.IsZero(volatileLanes))
                {
                    zappedScalar += ZapScalar(entries + i, lanes, firstGfn + (ulong)i, dirtyMask, atomic, ref sink, ref dirty);
                    continue;
                }
            }

            var dirtyLanes = TOps.AndNot(TOps.And(value, dirtyBits), notPresent);
            if (!TOps.IsZero(dirtyLanes))
            {
                // Report before the store, reading each dirty lane back (nobody else changes it under this policy).
                ReportLanes(entries + i, ~TOps.TopBits(TOps.EqualsZero(dirtyLanes)) & LaneMask(lanes), firstGfn + (ulong)i, ref sink, ref dirty);
            }

            TOps.Store(TOps.And(value, notPresent), entries + i);
            zappedLanes = TOps.Add(zappedLanes, TOps.ShiftRight(presentBits, PresentShift));
        }

        return (long)TOps.Sum(zappedLanes) + zappedScalar
            + ZapScalar(entries + i, count - i, firstGfn + (ulong)i, dirtyMask, atomic, ref sink, ref dirty);
    }

    // --------------------------------------------------------------------------------------------------
    // Age with A/D bits on: young = present and accessed; clearing clears the accessed bit only.
    // --------------------------------------------------------------------------------------------------

    /// <summary>Counts the young entries of <c>entries[0..count)</c> and, when <paramref name="clear"/>, clears their accessed bit.</summary>
    public static long AgeAccessed(ulong* entries, int count, bool clear, bool atomic) =>
        EptVectorPath.Current switch
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
    public static long AgeTracking<TSink>(ulong* entries, int count, ulong firstGfn, bool clear, bool atomic, ref TSink sink, ref long cleared, ref long dirty)
        where TSink : struct, IDirtyPfnSink =>
        EptVectorPath.Current switch
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

    private static long AgeTrackingVector<TOps, TVec, TSink>(ulong* entries, int count, ulong firstGfn, bool clear, bool atomic, ref TSink sink, ref long cleared, ref long dirty)
        where TOps : struct, IVectorOps<TVec>
        where TVec : struct
        where TSink : struct, IDirtyPfnSink
    {
        var present = TOps.Broadcast(Present);
        var permissions = TOps.Broadcast(Spte.PermissionMask);
        var writableOrDirty = TOps.Broadcast(Spte.WritableBit | Dirty);
        var readable = TOps.Broadcast(Spte.ReadableBit);
        var executable = TOps.Broadcast(Spte.ExecutableBit);
        var trackCleared = TOps.Broadcast(AccessTrackCleared);
        var lanes = TOps.Lanes;
        var youngLanes = TOps.Zero;
        long youngScalar = 0;
        var i = 0;
        for (; i <= count - lanes; i += lanes)
        {
            var value = TOps.Load(entries + i);
            var young = TOps.AndNot(
                TOps.EqualsZero(TOps.EqualsZero(TOps.And(value, permissions))),
                TOps.EqualsZero(TOps.And(value, present)));
            if (TOps.IsZero(young))
            {
                continue;
            }

            if (!clear)
            {
                youngLanes = TOps.Add(youngLanes, TOps.ShiftRight(young, 63));
                continue;
            }

            if (atomic)
            {
                youngScalar += AgeTrackingScalar(entries + i, lanes, firstGfn + (ulong)i, clear, atomic, ref sink, ref cleared, ref dirty);
                continue;
            }

            var dirtyLanes = TOps.AndNot(young, TOps.EqualsZero(TOps.And(value, writableOrDirty)));
            if (!TOps.IsZero(dirtyLanes))
            {
                ReportLanes(entries + i, TOps.TopBits(dirtyLanes), firstGfn + (ulong)i, ref sink, ref dirty);
            }

            var tracked = TOps.Or(
                TOps.AndNot(value, trackCleared),
                TOps.Or(TOps.ShiftLeft(TOps.And(value, readable), 54), TOps.ShiftLeft(TOps.And(value, executable), 53)));
            TOps.Store(TOps.Select(young, tracked, value), entries + i);
            var made = TOps.ShiftRight(young, 63);
            youngLanes = TOps.Add(youngLanes, made);
            cleared += BitOperations.PopCount(TOps.TopBits(young));
        }

        return (long)TOps.Sum(youngLanes) + youngScalar
            + AgeTrackingScalar(entries + i, count - i, firstGfn + (ulong)i, clear, atomic, ref sink, ref cleared, ref dirty);
    }

    // --------------------------------------------------------------------------------------------------
    // Count.
    // --------------------------------------------------------------------------------------------------

    /// <summary>The number of present entries in <c>entries[0..count)</c>.</summary>
    public static long CountPresent(ulong* entries, int count) =>
        EptVectorPath.Current switch
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

    private static void ReportLanes<TSink>(ulong* group, uint laneMask, ulong firstGfn, ref TSink sink, ref long dirty)
        where TSink : struct, IDirtyPfnSink
    {
        while (laneMask != 0)
        {
            var lane = BitOperations.TrailingZeroCount(laneMask);
            dirty++;
            sink.MarkDirty(new Gfn(firstGfn + (ulong)lane), PfnOf(group[lane]), 1);
            laneMask &= laneMask - 1;
        }
    }
}
