namespace Hypervisor.GuestMmu.Ept;

/// <content>The per-leaf-table counts (<see cref="LeafTableCounts"/>): audit and a test loader.</content>
public sealed unsafe partial class EptPageTable
{
    /// <summary>
    /// Recounts every level-1 table and returns one line per table whose <see cref="LeafTableCounts"/> are
    /// wrong: a present count that differs from its entries, or a clean hint over a present dirty entry.
    /// Run with the MMU lock held for write (or quiescent).
    /// </summary>
    internal IReadOnlyList<string> CheckLeafTableCounts()
    {
        ThrowIfDisposed();
        var problems = new List<string>();
        var it = new TdpIterator(_arena, _root, 0, EptGeometry.GfnLimit, 1);
        while (it.MoveNext())
        {
            if (it.Level != 1)
            {
                continue;
            }

            var table = it.LeafRunPointer(out _) - it.Slot;
            var counts = EptArena.CountsOf(table);
            var present = (int)EptLeafKernels.CountPresent(_vectorWidth, table, EptGeometry.EntriesPerTable);
            var dirty = CountReportedDirty(table);

            var first = new Gfn(it.Gfn.Value & ~(ulong)(EptGeometry.EntriesPerTable - 1));
            if (counts->Present != present)
            {
                problems.Add($"leaf table at {first}: counts say {counts->Present} present, its entries hold {present}");
            }

            if (counts->MayHoldDirty == 0 && dirty != 0)
            {
                problems.Add($"leaf table at {first}: counts say clean, but {dirty} present entries are dirty");
            }

            it.SkipLeafRun();
        }

        return problems;
    }

    /// <summary>
    /// Overwrites the existing level-1 table holding <paramref name="first"/> (512-aligned) with
    /// <paramref name="entries"/> and recounts it, for tests that need arbitrary table contents. Write lock held.
    /// </summary>
    /// <exception cref="ArgumentException"><paramref name="first"/> is not table-aligned, the span is not 512 entries, or no level-1 table holds it.</exception>
    internal void LoadLeafTable(Gfn first, ReadOnlySpan<ulong> entries)
    {
        if ((first.Value & (EptGeometry.EntriesPerTable - 1)) != 0 || entries.Length != EptGeometry.EntriesPerTable)
        {
            throw new ArgumentException($"a leaf table load needs a 512-aligned gfn and 512 entries, not {first} and {entries.Length}", nameof(entries));
        }

        ThrowIfDisposed();
        var walk = new TdpPointWalk(_arena, _root, first.Value);
        if (!walk.TryDescendTo(1))
        {
            throw new ArgumentException($"no level-1 table maps {first}", nameof(first));
        }

        var table = walk.Table;
        var counts = EptArena.CountsOf(table);
        entries.CopyTo(new Span<ulong>(table, EptGeometry.EntriesPerTable));
        var present = (int)EptLeafKernels.CountPresent(_vectorWidth, table, EptGeometry.EntriesPerTable);
        Interlocked.Add(ref _leavesAdded, present - counts->Present);
        counts->Present = present;
        counts->MayHoldDirty = CountReportedDirty(table) != 0 ? 1 : 0;
    }

    private int CountReportedDirty(ulong* table)
    {
        var dirty = 0;
        for (var i = 0; i < EptGeometry.EntriesPerTable; i++)
        {
            dirty += IsReportedDirty(table[i]) ? 1 : 0;
        }

        return dirty;
    }
}
