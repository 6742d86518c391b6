using Hypervisor.HostMm.PageTables;
using Hypervisor.Notifier;
using static Hypervisor.HostMm.Tests.PageTables.PageTableTestSupport;

namespace Hypervisor.HostMm.Tests.PageTables;

public sealed class MoveEntriesTests
{
    [Test]
    public void AcrossTableBoundaries_EveryEntryArrives_OldSlotsAreNone_AndChunksCoverTheOldRangeOnce()
    {
        using var memory = CreateMemory();
        using var table = new HostPageTable(memory, 0);
        const ulong pages = 1300;
        var oldStart = OneGiB - TwoMiB - (100 * Page);   // spans 3 old PTE tables and a PD boundary
        var newStart = (3 * OneGiB) + (37 * Page);       // new chunks cut at different offsets
        var expected = new List<(Hva, Hva, HostPte)>();
        for (ulong i = 0; i < pages; i++)
        {
            if (i % 7 == 3)
            {
                continue; // holes are not reported
            }

            var pte = i % 5 == 0 ? HostPteEncoding.MakeSwap(i) : Tagged(1000 + i);
            Set(table, oldStart + (i * Page), pte);
            expected.Add((At(oldStart + (i * Page)), At(newStart + (i * Page)), pte));
        }

        var visitor = new MoveRecorder(table, newStart - oldStart);
        table.MoveEntries(At(oldStart), At(newStart), pages, ref visitor);

        Assert.That(visitor.Moves, Is.EqualTo(expected));
        for (ulong i = 0; i < pages; i++)
        {
            Assert.That(table.Read(At(oldStart + (i * Page))), Is.EqualTo(HostPte.None));
            var arrived = table.Read(At(newStart + (i * Page)));
            Assert.That(arrived, Is.EqualTo(i % 7 == 3 ? HostPte.None : i % 5 == 0 ? HostPteEncoding.MakeSwap(i) : Tagged(1000 + i)));
        }

        // Chunks: contiguous, ascending, exactly [oldStart, oldEnd), each inside one old and one new PTE table, both locked.
        var cursor = At(oldStart);
        foreach (var chunk in visitor.Chunks)
        {
            Assert.That(chunk.FromStart, Is.EqualTo(cursor));
            Assert.That(chunk.FromEnd, Is.GreaterThan(chunk.FromStart));
            Assert.That((chunk.FromEnd.Value - 1) / TwoMiB, Is.EqualTo(chunk.FromStart.Value / TwoMiB));
            var newFirst = chunk.FromStart.Value + (newStart - oldStart);
            Assert.That((newFirst + (chunk.FromEnd - chunk.FromStart) - 1) / TwoMiB, Is.EqualTo(newFirst / TwoMiB));
            Assert.That(chunk.OldLocked && chunk.NewLocked, Is.True);
            cursor = chunk.FromEnd;
        }

        Assert.That(cursor, Is.EqualTo(At(oldStart + (pages * Page))));
        Assert.That(visitor.Chunks, Has.Count.EqualTo(6)); // old cuts at 1G-2M, 1G, 1G+2M; new cuts at 3 more points
        Assert.That(table.CountEntries(At(0), At(4 * OneGiB)).NonNone, Is.EqualTo(expected.Count));
    }

    [Test]
    public void WithinOnePteTable_TakesItsLockOnce()
    {
        using var memory = CreateMemory();
        using var table = new HostPageTable(memory, 0);
        Set(table, 0x10000, Tagged(1));
        Set(table, 0x13000, Tagged(4));
        var visitor = new MoveRecorder(table, 0x30000);

        table.MoveEntries(At(0x10000), At(0x40000), 4, ref visitor);

        Assert.That(visitor.Moves, Is.EqualTo(new[] { (At(0x10000), At(0x40000), Tagged(1)), (At(0x13000), At(0x43000), Tagged(4)) }));
        Assert.That(visitor.Chunks, Is.EqualTo(new[] { new MoveChunk(At(0x10000), At(0x14000), true, true) }));
        Assert.That(table.Read(At(0x10000)), Is.EqualTo(HostPte.None));
        Assert.That(table.Read(At(0x43000)), Is.EqualTo(Tagged(4)));
    }

    [Test]
    public void MissingOldTables_AreSkippedWithoutChunksOrNewTables()
    {
        using var memory = CreateMemory();
        using var table = new HostPageTable(memory, 0);
        Set(table, (2 * OneGiB) + Page, Tagged(7)); // the only populated old table, 2 GiB into a 4 GiB range
        var pagesBefore = table.TablePages;
        var visitor = new MoveRecorder(table, 8 * OneGiB);

        table.MoveEntries(At(0), At(8 * OneGiB), (4 * OneGiB) / Page, ref visitor);

        Assert.That(visitor.Moves, Is.EqualTo(new[] { (At((2 * OneGiB) + Page), At((10 * OneGiB) + Page), Tagged(7)) }));
        Assert.That(visitor.Chunks.Select(c => (c.FromStart, c.FromEnd)), Is.EqualTo(new[] { (At(2 * OneGiB), At((2 * OneGiB) + TwoMiB)) }));
        Assert.That(table.TablePages, Is.EqualTo(pagesBefore + 2)); // a new PD and PTE table
    }

    [Test]
    public void OverlappingRanges_AreRejected_AndNothingMoves()
    {
        using var memory = CreateMemory();
        using var table = new HostPageTable(memory, 0);
        Set(table, 0x10000, Tagged(1));
        var visitor = new MoveRecorder(table, 0);

        Assert.That(
            () => table.MoveEntries(At(0x10000), At(0x13000), 4, ref visitor),
            Throws.TypeOf<InvalidRangeException>().With.Message.Contains("[0x10000, 0x14000)").And.Message.Contains("[0x13000, 0x17000)").And.Message.Contains("overlap"));
        Assert.That(
            () => table.MoveEntries(At(0x13000), At(0x10000), 4, ref visitor),
            Throws.TypeOf<InvalidRangeException>().With.Message.Contains("overlap"));
        Assert.That(visitor.Moves, Is.Empty);
        Assert.That(table.Read(At(0x10000)), Is.EqualTo(Tagged(1)));
    }

    [Test]
    public void BadArguments_AreRejectedNamingTheValue()
    {
        using var memory = CreateMemory();
        using var table = new HostPageTable(memory, 0);
        var visitor = new MoveRecorder(table, 0);

        Assert.That(() => table.MoveEntries(At(0x10000), At(0x40000), 0, ref visitor), Throws.TypeOf<InvalidRangeException>().With.Message.Contains("0 pages"));
        Assert.That(() => table.MoveEntries(At(0x10800), At(0x40000), 1, ref visitor), Throws.TypeOf<InvalidRangeException>().With.Message.Contains("0x10800"));
        Assert.That(
            () => table.MoveEntries(At(0x10000), At((1UL << 47) - Page), 2, ref visitor),
            Throws.TypeOf<InvalidRangeException>().With.Message.Contains("0x800000001000").And.Message.Contains("47-bit"));
        Assert.That(
            () => table.MoveEntries(At(1UL << 63), At(0x1000), 1, ref visitor),
            Throws.TypeOf<InvalidRangeException>().With.Message.Contains("0x8000000000000000"));
    }

    [Test]
    public void AnOccupiedDestination_IsRejectedNamingTheAddress_AndThatChunkIsUntouched()
    {
        using var memory = CreateMemory();
        using var table = new HostPageTable(memory, 0);
        Set(table, 0x10000, Tagged(1));
        Set(table, 0x11000, Tagged(2));
        Set(table, OneGiB + 0x2000, HostPteEncoding.MakeSwap(5)); // destination of 0x12000, a none source slot
        var visitor = new MoveRecorder(table, OneGiB);

        Assert.That(
            () => table.MoveEntries(At(0x10000), At(OneGiB + 0x0000), 4, ref visitor),
            Throws.TypeOf<InvalidOperationException>().With.Message.Contains("0x40002000").And.Message.Contains("swap slot 0x5"));

        Assert.That(visitor.Moves, Is.Empty);
        Assert.That(table.Read(At(0x10000)), Is.EqualTo(Tagged(1)));
        Assert.That(table.Read(At(0x11000)), Is.EqualTo(Tagged(2)));
        Assert.That(table.Read(At(OneGiB)), Is.EqualTo(HostPte.None));

        // Both PTLs were released: locking each table again succeeds at once.
        Assert.That(table.TryLock(At(0x10000), allocate: false, out var oldSide), Is.True);
        oldSide.Dispose();
        Assert.That(table.TryLock(At(OneGiB), allocate: false, out var newSide), Is.True);
        newSide.Dispose();
    }
}
