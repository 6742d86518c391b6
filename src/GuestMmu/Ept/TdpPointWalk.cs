namespace Hypervisor.GuestMmu.Ept;

/// <summary>
/// One gfn's path through an <see cref="EptPageTable"/>, root first: the point form of
/// <see cref="TdpIterator"/> (KVM's <c>for_each_tdp_pte</c> over a one-gfn range, as
/// <c>kvm_tdp_mmu_map</c> uses it), for lookups, the fault path's install and hardware A/D updates. It
/// takes the iterator's step (<see cref="TdpStep"/>) without the range bookkeeping, so a TLB miss pays only
/// for the entries it reads.
/// </summary>
/// <remarks>
/// <para>The walk stands on one entry at a time (<see cref="Level"/>, <see cref="Entry"/>) and only moves
/// down, each step re-reading the entry it follows, so it never enters a table unlinked since an earlier
/// read. A caller that links a missing table (the install) does so through <see cref="Entry"/> and steps
/// again.</para>
/// <para><b>Memory safety</b> is the iterator's: tables go back to the arena only in
/// <see cref="EptPageTable.ReclaimRetiredTables"/> and <see cref="EptPageTable.Dispose"/>, whose callers
/// guarantee no walk is in flight.</para>
/// </remarks>
internal unsafe ref struct TdpPointWalk // unsafe: table memory is native and addressed by pointer.
{
    private readonly EptArena _arena;
    private readonly ulong _gfn;
    private ulong* _table;
    private int _level;

    /// <summary>Starts at <paramref name="gfn"/>'s entry in the root table <paramref name="root"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public TdpPointWalk(EptArena arena, ulong* root, ulong gfn)
    {
        _arena = arena;
        _gfn = gfn;
        _table = root;
        _level = EptGeometry.RootLevel;
    }

    /// <summary>The current entry's level: 4 = root table, 1 = 4 KiB leaves.</summary>
    public readonly int Level => _level;

    /// <summary>The current entry's slot in <see cref="Table"/>.</summary>
    public readonly int Slot
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => EptGeometry.Slot(_gfn, _level);
    }

    /// <summary>The table holding the current entry.</summary>
    public readonly ulong* Table => _table;

    /// <summary>A reference to the current entry in table memory (read it with <see cref="Volatile.Read(ref readonly ulong)"/>: others may write it).</summary>
    public readonly ref ulong Entry
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => ref _table[EptGeometry.Slot(_gfn, _level)];
    }

    /// <summary>
    /// Steps down to the table holding the gfn's entry at <paramref name="level"/>, reading only the entries
    /// above it. False when one of them links no table; the walk then stands on that entry.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool TryDescendTo(int level)
    {
        while (_level > level)
        {
            var child = TdpStep.Down(_arena, Volatile.Read(ref Entry), _level);
            if (child is null)
            {
                return false;
            }

            _table = child;
            _level--;
        }

        return true;
    }

    /// <summary>
    /// Steps down while the current entry links a table and the walk is above <paramref name="minLevel"/>;
    /// returns the entry it stops on, read once (volatile): the one at <paramref name="minLevel"/>, or the
    /// first above it that is not a present non-leaf (non-present, frozen, or a leaf).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ulong Descend(int minLevel)
    {
        while (true)
        {
            var entry = Volatile.Read(ref Entry);
            if (_level == minLevel)
            {
                return entry;
            }

            var child = TdpStep.Down(_arena, entry, _level);
            if (child is null)
            {
                return entry;
            }

            _table = child;
            _level--;
        }
    }
}
