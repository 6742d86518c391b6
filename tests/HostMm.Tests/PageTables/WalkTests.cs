using Hypervisor.HostMm.Frames;
using Hypervisor.HostMm.PageTables;
using Hypervisor.Notifier;
using static Hypervisor.HostMm.Tests.PageTables.PageTableTestSupport;

namespace Hypervisor.HostMm.Tests.PageTables;

public sealed class WalkTests
{
    [Test]
    public void Allocating_SegmentsExactlyAtTwoMiBAndOneGiBBoundaries_WithUnalignedEnds()
    {
        using var memory = CreateMemory();
        using var table = new HostPageTable(memory, 0);
        var start = OneGiB - TwoMiB - (3 * Page);
        var end = OneGiB + TwoMiB + (5 * Page);
        var visitor = new SegmentRecorder(memory);

        table.Walk(At(start), At(end), allocate: true, ref visitor);

        Assert.That(
            visitor.Segments.Select(s => (s.First, s.Count)),
            Is.EqualTo(new[]
            {
                (At(start), 3),
                (At(OneGiB - TwoMiB), 512),
                (At(OneGiB), 512),
                (At(OneGiB + TwoMiB), 5),
            }));
        Assert.That(visitor.Segments.Select(s => s.LockHeld), Is.All.True);
        Assert.That(visitor.Segments.Select(s => s.Table).Distinct().Count(), Is.EqualTo(4));
        Assert.That(visitor.Segments.Select(s => memory.Frame(s.Table).Has(FrameFlags.Locked)), Is.All.False);

        // 1 GiB - 2 MiB - 3 pages lies in the PTE table below it: PTE tables at 1G-4M, 1G-2M, 1G, 1G+2M; PDs for GiB 0 and 1.
        Assert.That(table.Stats, Is.EqualTo(new PageTableStats { RootTables = 1, PdptTables = 1, PdTables = 2, PteTables = 4 }));
    }

    [Test]
    public void Allocating_AcrossA512GiBBoundary_PopulatesBothSides()
    {
        using var memory = CreateMemory();
        using var table = new HostPageTable(memory, 0);
        var visitor = new SegmentRecorder(memory);

        table.Walk(At(FiveTwelveGiB - (4 * Page)), At(FiveTwelveGiB + (4 * Page)), allocate: true, ref visitor);

        Assert.That(
            visitor.Segments.Select(s => (s.First, s.Count)),
            Is.EqualTo(new[] { (At(FiveTwelveGiB - (4 * Page)), 4), (At(FiveTwelveGiB), 4) }));
        Assert.That(table.Stats, Is.EqualTo(new PageTableStats { RootTables = 1, PdptTables = 2, PdTables = 2, PteTables = 2 }));
    }

    [Test]
    public void NotAllocating_SkipsMissingTablesAtEveryLevel_AndVisitsOnlyPopulatedOnes()
    {
        using var memory = CreateMemory();
        using var table = new HostPageTable(memory, 0);
        Set(table, 0x5000, Tagged(1));
        Set(table, (5 * OneGiB) + (3 * TwoMiB) + Page, Tagged(2));
        Set(table, (300UL << 30) + Page, Tagged(3));
        Set(table, (1UL << 47) - Page, Tagged(4));
        var pagesBefore = table.TablePages;
        var visitor = new SegmentRecorder(memory);

        table.Walk(At(0x3000), HostPageTable.UserAddressEnd, allocate: false, ref visitor);

        Assert.That(
            visitor.Segments.Select(s => (s.First, s.Count)),
            Is.EqualTo(new[]
            {
                (At(0x3000), 509),
                (At((5 * OneGiB) + (3 * TwoMiB)), 512),
                (At(300UL << 30), 512),
                (At((1UL << 47) - TwoMiB), 512),
            }));
        Assert.That(table.TablePages, Is.EqualTo(pagesBefore));
    }

    [Test]
    public void NotAllocating_OnAnEmptyTable_VisitsNothing()
    {
        using var memory = CreateMemory();
        using var table = new HostPageTable(memory, 0);
        var visitor = new SegmentRecorder(memory);

        table.Walk(At(0), HostPageTable.UserAddressEnd, allocate: false, ref visitor);

        Assert.That(visitor.Segments, Is.Empty);
        Assert.That(table.TablePages, Is.EqualTo(1));
    }

    [Test]
    public void Stopping_EndsTheWalk_AndAllocatesNoFurther()
    {
        using var memory = CreateMemory();
        using var table = new HostPageTable(memory, 0);
        var visitor = new SegmentRecorder(memory, stopAfter: 2);

        table.Walk(At(0), At(OneGiB), allocate: true, ref visitor);

        Assert.That(visitor.Segments.Select(s => s.First), Is.EqualTo(new[] { At(0), At(TwoMiB) }));
        Assert.That(table.Stats.PteTables, Is.EqualTo(2));
    }

    [Test]
    public void EntriesWrittenThroughTheSpan_AreSeenByRead()
    {
        using var memory = CreateMemory();
        using var table = new HostPageTable(memory, 0);
        var writer = new TaggingVisitor();

        table.Walk(At(TwoMiB - (2 * Page)), At(TwoMiB + (2 * Page)), allocate: true, ref writer);

        for (var address = TwoMiB - (2 * Page); address < TwoMiB + (2 * Page); address += Page)
        {
            Assert.That(table.Read(At(address)), Is.EqualTo(Tagged(address >> 12)));
        }

        Assert.That(table.Read(At(TwoMiB - (3 * Page))), Is.EqualTo(HostPte.None));
        Assert.That(table.Read(At(TwoMiB + (2 * Page))), Is.EqualTo(HostPte.None));
        Assert.That(writer.Pages, Is.EqualTo(4));
    }

    [Test]
    public void AVisitorThatThrows_LeavesTheTableUnlocked()
    {
        using var memory = CreateMemory();
        using var table = new HostPageTable(memory, 0);
        var visitor = new ThrowingVisitor();

        Assert.That(() => table.Walk(At(0), At(Page), allocate: true, ref visitor), Throws.TypeOf<InvalidTimeZoneException>());

        var recorder = new SegmentRecorder(memory);
        table.Walk(At(0), At(Page), allocate: false, ref recorder);
        Assert.That(recorder.Segments, Has.Count.EqualTo(1));
        Assert.That(memory.Frame(recorder.Segments[0].Table).Has(FrameFlags.Locked), Is.False);
    }

    [Test]
    public void ConcurrentAllocatingWalks_PopulateEachTableOnce()
    {
        using var memory = CreateMemory();
        var baseline = memory.FreeFrames;
        using var table = new HostPageTable(memory, 0);
        const int threads = 4;
        using var barrier = new Barrier(threads);
        var failures = new System.Collections.Concurrent.ConcurrentQueue<Exception>();

        var workers = Enumerable.Range(0, threads).Select(_ => new Thread(() =>
        {
            try
            {
                barrier.SignalAndWait();
                var visitor = new CountingIncrementVisitor();
                table.Walk(At(OneGiB - (8 * TwoMiB)), At(OneGiB + (8 * TwoMiB)), allocate: true, ref visitor);
            }
            catch (Exception ex)
            {
                failures.Enqueue(ex);
            }
        })).ToList();
        workers.ForEach(t => t.Start());
        workers.ForEach(t => t.Join());

        Assert.That(failures, Is.Empty);
        Assert.That(table.Stats, Is.EqualTo(new PageTableStats { RootTables = 1, PdptTables = 1, PdTables = 2, PteTables = 16 }));
        Assert.That(memory.FreeFrames, Is.EqualTo(baseline - 20));
        Assert.That(table.Read(At(OneGiB)).Value, Is.EqualTo((ulong)threads));
        Assert.That(table.Read(At(OneGiB - Page)).Value, Is.EqualTo((ulong)threads));
    }

    private struct TaggingVisitor : IPteVisitor
    {
        public int Pages { get; private set; }

        public bool VisitTable(Hva firstAddress, Span<ulong> entries, Pfn tablePfn)
        {
            for (var i = 0; i < entries.Length; i++)
            {
                entries[i] = Tagged((firstAddress.Value >> 12) + (ulong)i).Value;
            }

            Pages += entries.Length;
            return true;
        }
    }

    private struct ThrowingVisitor : IPteVisitor
    {
        public readonly bool VisitTable(Hva firstAddress, Span<ulong> entries, Pfn tablePfn) =>
            throw new InvalidTimeZoneException("visitor failure");
    }

    /// <summary>Adds one to every slot (a lost update under the PTL would show as a count below the thread count).</summary>
    private struct CountingIncrementVisitor : IPteVisitor
    {
        public readonly bool VisitTable(Hva firstAddress, Span<ulong> entries, Pfn tablePfn)
        {
            for (var i = 0; i < entries.Length; i++)
            {
                entries[i]++;
            }

            return true;
        }
    }
}
