using Hypervisor.GuestMmu.Ept;

namespace Hypervisor.GuestMmu.Tests.Ept;

public sealed class EptArenaTests
{
    [Test]
    public unsafe void CountsSitBesideEachTable_AndAReallocatedTableStartsWithNone()
    {
        Assert.That(System.Runtime.CompilerServices.Unsafe.SizeOf<LeafTableCounts>(), Is.EqualTo(EptArena.BytesPerTable - EptGeometry.TableBytes));
        using var arena = new EptArena();
        var tables = Enumerable.Range(0, EptArena.TablesPerChunk + 2).Select(_ => arena.Allocate()).ToList();
        var counts = tables.Select(t => (nint)EptArena.CountsOf(arena.TablePointer(t))).ToList();
        Assert.That(counts, Is.Unique, "every table, in either chunk, has its own counts");
        foreach (var table in tables)
        {
            var tableStart = (nint)arena.TablePointer(table);
            var own = (nint)EptArena.CountsOf(arena.TablePointer(table));
            Assert.That(own < tableStart || own >= tableStart + EptGeometry.TableBytes, Is.True, "counts never overlap the table's entries");
        }

        var last = tables[^1];
        EptArena.CountsOf(arena.TablePointer(last))->Present = 512;
        EptArena.CountsOf(arena.TablePointer(last))->MayHoldDirty = 1;
        arena.Free(last);
        Assert.That(arena.Allocate(), Is.EqualTo(last));
        Assert.That(EptArena.CountsOf(arena.TablePointer(last))->Present, Is.Zero);
        Assert.That(EptArena.CountsOf(arena.TablePointer(last))->MayHoldDirty, Is.Zero);
    }

    [Test]
    public unsafe void Allocate_HandsOutZeroedPageAlignedTables()
    {
        using var arena = new EptArena();
        var first = arena.Allocate();
        var table = arena.Table(first);
        Assert.That(table.Length, Is.EqualTo(512));
        Assert.That(table.ToArray(), Is.All.Zero);
        fixed (ulong* p = table)
        {
            Assert.That((ulong)p % 4096, Is.Zero, "a table is a 4 KiB-aligned block");
        }

        table.Fill(0xFFFF);
        arena.Free(first);
        var again = arena.Allocate();
        Assert.That(again, Is.EqualTo(first), "freed tables are reused first");
        Assert.That(arena.Table(again).ToArray(), Is.All.Zero, "a reused table comes back zeroed");
    }

    [Test]
    public void GrowsByChunks_AndCountsTablesAndBytes()
    {
        using var arena = new EptArena();
        Assert.That(arena.BytesReserved, Is.Zero);
        var tables = new List<uint>();
        for (var i = 0; i < EptArena.TablesPerChunk + 1; i++)
        {
            tables.Add(arena.Allocate());
        }

        Assert.That(tables, Is.Unique);
        Assert.That(arena.TablesInUse, Is.EqualTo(513));
        Assert.That(arena.BytesReserved, Is.EqualTo(2L * ((2 * 1024 * 1024) + (512 * 8))), "two chunks of 2 MiB of tables and 4 KiB of counts");
        arena.Entry(tables[^1], 511) = 42;
        Assert.That(arena.Table(tables[^1])[511], Is.EqualTo(42), "Entry and Table address the same memory");

        foreach (var table in tables)
        {
            arena.Free(table);
        }

        Assert.That(arena.TablesInUse, Is.Zero);
        Assert.That(arena.Allocations, Is.EqualTo(513));
        Assert.That(arena.Frees, Is.EqualTo(513));
        Assert.That(arena.BytesReserved, Is.EqualTo(2L * ((2 * 1024 * 1024) + (512 * 8))), "chunks are kept until dispose");
    }

    [Test]
    public void Free_Twice_OrNeverAllocated_ThrowsNamingTheTable()
    {
        using var arena = new EptArena();
        var table = arena.Allocate();
        arena.Free(table);
        var ex = Assert.Throws<InvalidOperationException>(() => arena.Free(table));
        Assert.That(ex!.Message, Does.Contain($"table {table} is not allocated"));
        Assert.Throws<InvalidOperationException>(() => arena.Free(12345));
        Assert.That(arena.TablesInUse, Is.Zero);
    }

    [Test]
    public void Table_OutOfRange_ThrowsNamingTheIndexAndSlot()
    {
        using var arena = new EptArena();
        var table = arena.Allocate();
        var ex = Assert.Throws<ArgumentOutOfRangeException>(() => arena.Table(600));
        Assert.That(ex!.Message, Does.Contain("table 600 does not exist"));
        var ex2 = Assert.Throws<ArgumentOutOfRangeException>(() => arena.Entry(table, 512));
        Assert.That(ex2!.Message, Does.Contain("slot 512"));
    }

    [Test]
    public void ConcurrentAllocateAndFree_NeverHandOutATableTwice()
    {
        using var arena = new EptArena();
        const int Threads = 4;
        const int Rounds = 2000;
        var owners = new int[Threads * Rounds * 2];
        var failures = 0;
        Parallel.For(0, Threads, new ParallelOptions { MaxDegreeOfParallelism = Threads }, t =>
        {
            var held = new List<uint>();
            for (var i = 0; i < Rounds; i++)
            {
                var table = arena.Allocate();
                if (Interlocked.CompareExchange(ref owners[table], t + 1, 0) != 0)
                {
                    Interlocked.Increment(ref failures);
                }

                held.Add(table);
                if (i % 3 == 0)
                {
                    var back = held[0];
                    held.RemoveAt(0);
                    owners[back] = 0;
                    arena.Free(back);
                }
            }

            foreach (var table in held)
            {
                owners[table] = 0;
                arena.Free(table);
            }
        });

        Assert.That(failures, Is.Zero);
        Assert.That(arena.TablesInUse, Is.Zero);
    }

    [Test]
    public void Dispose_ThenAllocate_Throws()
    {
        var arena = new EptArena();
        arena.Allocate();
        arena.Dispose();
        Assert.That(arena.TablesInUse, Is.Zero);
        Assert.Throws<ObjectDisposedException>(() => arena.Allocate());
    }
}
