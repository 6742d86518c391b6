namespace Hypervisor.GuestMmu.Ept;

/// <summary>
/// The one range walk over an <see cref="EptPageTable"/> (the model of KVM's <c>tdp_iter</c>): a pre-order
/// traversal of every entry whose range intersects <c>[start, end)</c>, from the root down to a minimum
/// level. Each step tries, in order: <b>down</b> into the current entry (only a present non-leaf above the
/// minimum level, re-read just before descending so a table unlinked meanwhile is never entered),
/// <b>side</b> to the next entry of the same table, <b>up</b> and side again. Every entry on the way is
/// yielded, present or not; callers filter.
/// </summary>
/// <remarks>
/// <para>Bulk callers take the whole in-range part of a level-1 table at once with <see cref="LeafRun"/>
/// and then <see cref="SkipLeafRun"/>. Point lookups and installs walk one gfn's path with
/// <see cref="TdpPointWalk"/>, which takes the same step down (<see cref="TdpStep"/>).</para>
/// <para><b>Yield and restart.</b> A caller that drops its lock (KVM's <c>cond_resched</c>) calls
/// <see cref="Restart"/> after retaking it: the iterator forgets its path and the next
/// <see cref="MoveNext"/> walks from the root to <see cref="NextGfn"/> again, re-reading every table
/// pointer. Entries on that path are yielded again (the current entry included), so work done per entry
/// must be idempotent, which zap, age and count are.</para>
/// <para><b>Memory safety.</b> The iterator reads table memory without a lock. Tables are only returned
/// to the arena by <see cref="EptPageTable.ReclaimRetiredTables"/> and <see cref="EptPageTable.Dispose"/>,
/// whose callers guarantee no walk is in flight.</para>
/// </remarks>
public unsafe ref struct TdpIterator // unsafe: table memory is native and addressed by pointer.
{
    private readonly EptArena _arena;
    private readonly ulong* _root;
    private readonly ulong _end;
    private readonly int _minLevel;
    private ulong _start;
    private TdpTablePath _path;
    private int _level;
    private int _slot;
    private ulong _gfn;
    private ulong _next;
    private bool _started;
    private bool _done;
    private bool _skipChildren;

    internal TdpIterator(EptArena arena, ulong* root, ulong start, ulong end, int minLevel)
    {
        _arena = arena;
        _root = root;
        _start = start;
        _end = end;
        _minLevel = minLevel;
    }

    /// <summary>The first gfn the current entry maps (aligned to its level; may lie below the range start for upper levels).</summary>
    public readonly Gfn Gfn => new(_gfn);

    /// <summary>The current entry's level: 4 = root table, 1 = 4 KiB leaves.</summary>
    public readonly int Level => _level;

    /// <summary>The current entry's slot in its table.</summary>
    public readonly int Slot => _slot;

    /// <summary>
    /// Where the walk stands in gfn order: the larger of the current entry's first gfn and the range
    /// start. <see cref="Restart"/> resumes here.
    /// </summary>
    public readonly Gfn NextGfn => new(_next);

    /// <summary>A reference to the current entry in table memory (read it with <see cref="Volatile.Read(ref readonly ulong)"/> when others may write it).</summary>
    /// <exception cref="InvalidOperationException">No entry is current.</exception>
    public readonly ref ulong Entry
    {
        get
        {
            ThrowIfNoCurrent();
            return ref *(CurrentTable + _slot);
        }
    }

    /// <summary>A volatile snapshot of the current entry.</summary>
    /// <exception cref="InvalidOperationException">No entry is current.</exception>
    public readonly Spte Spte => new(Volatile.Read(ref Entry));

    /// <summary>
    /// At level 1: the entries of the current table from the current slot to the last one inside the
    /// range (at most 512), for bulk processing. Follow with <see cref="SkipLeafRun"/>.
    /// </summary>
    /// <exception cref="InvalidOperationException">The current entry is not at level 1.</exception>
    public readonly Span<ulong> LeafRun
    {
        get
        {
            var first = LeafRunPointer(out var count);
            return new Span<ulong>(first, count);
        }
    }

    /// <summary>Advances to the next entry. False when the range is exhausted.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool MoveNext()
    {
        if (_done)
        {
            return false;
        }

        if (!_started)
        {
            return Begin();
        }

        if (_skipChildren)
        {
            _skipChildren = false;
        }
        else if (TryStepDown())
        {
            return true;
        }

        return StepSide();
    }

    /// <summary>Do not descend into the current entry's table on the next <see cref="MoveNext"/>.</summary>
    public void SkipChildren() => _skipChildren = true;

    /// <summary>
    /// Marks the current level-1 table's in-range entries (<see cref="LeafRun"/>) as done: the next
    /// <see cref="MoveNext"/> continues after the last of them.
    /// </summary>
    /// <exception cref="InvalidOperationException">The current entry is not at level 1.</exception>
    public void SkipLeafRun()
    {
        LeafRunPointer(out var count);
        _slot += count - 1;
        _gfn += (ulong)(count - 1);
        _next = _gfn;
    }

    /// <summary>
    /// Forgets the cached path; the next <see cref="MoveNext"/> walks from the root to <see cref="NextGfn"/>
    /// again (yielding the entries on that path once more). Call it after re-taking a lock that was dropped
    /// mid-walk.
    /// </summary>
    public void Restart()
    {
        if (!_started)
        {
            return;
        }

        _start = _next;
        _started = false;
        _skipChildren = false;
        _done = _next >= _end;
    }

    /// <summary>The first entry of the current leaf run and how many follow in range (internal bulk path).</summary>
    internal readonly ulong* LeafRunPointer(out int count)
    {
        ThrowIfNoCurrent();
        if (_level != 1)
        {
            throw new InvalidOperationException($"the leaf run exists at level 1 only; the iterator is at level {_level} ({Gfn})");
        }

        var tableEnd = (_gfn | (EptGeometry.EntriesPerTable - 1)) + 1;
        var runEnd = Math.Min(tableEnd, _end);
        count = (int)(runEnd - _gfn);
        return CurrentTable + _slot;
    }

    private readonly ulong* CurrentTable => (ulong*)_path[_level];

    private bool Begin()
    {
        _started = true;
        if (_start >= _end)
        {
            _done = true;
            return false;
        }

        _level = EptGeometry.RootLevel;
        _path[_level] = (nint)_root;
        _slot = EptGeometry.Slot(_start, _level);
        _gfn = EptGeometry.EntryBase(_start, _level);
        _next = _start;
        return true;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private bool TryStepDown()
    {
        if (_level <= _minLevel)
        {
            return false;
        }

        // Re-read: never enter a table that was unlinked since the entry was yielded.
        var child = TdpStep.Down(_arena, Volatile.Read(ref *(CurrentTable + _slot)), _level);
        if (child is null)
        {
            return false;
        }

        _level--;
        _path[_level] = (nint)child;

        // _next lies inside the entry just left (it is max(entry start, range start)).
        _slot = EptGeometry.Slot(_next, _level);
        _gfn = EptGeometry.EntryBase(_next, _level);
        return true;
    }

    private bool StepSide()
    {
        while (true)
        {
            var following = _gfn + EptGeometry.FramesPerEntry(_level);
            if (following >= _end)
            {
                // Everything after this entry, at any level, starts at or beyond the range end.
                _done = true;
                return false;
            }

            if (_slot < EptGeometry.EntriesPerTable - 1)
            {
                _slot++;
                _gfn = following;
                _next = following;
                return true;
            }

            // Last slot of this table: go up to the entry that points here, then try its neighbour.
            _level++;
            _slot = EptGeometry.Slot(_gfn, _level);
            _gfn = EptGeometry.EntryBase(_gfn, _level);
        }
    }

    private readonly void ThrowIfNoCurrent()
    {
        if (!_started || _done)
        {
            throw new InvalidOperationException("the iterator has no current entry: call MoveNext first and stop when it returns false");
        }
    }
}
