using Hypervisor.HostMm.Frames;
using Hypervisor.HostMm.PageTables;
using Hypervisor.Notifier;
using static Hypervisor.HostMm.Tests.PageTables.PageTableTestSupport;

namespace Hypervisor.HostMm.Tests.PageTables;

public sealed class FreeEmptyTablesTests
{
    [Test]
    public void EmptiedTables_AreAllReturned_ButNeverTheRoot()
    {
        using var memory = CreateMemory();
        var baseline = memory.FreeFrames;
        using var table = new HostPageTable(memory, 0);
        var start = OneGiB - (2 * TwoMiB);
        var end = OneGiB + (2 * TwoMiB);
        var tables = Populate(table, start, end);
        Assert.That(table.Stats, Is.EqualTo(new PageTableStats { RootTables = 1, PdptTables = 1, PdTables = 2, PteTables = 4 }));
        Clear(table, start, end);

        table.FreeEmptyTables(At(0), At(2 * OneGiB));

        // The PDPT maps 512 GiB, which reaches outside the range: it stays.
        Assert.That(memory.FreeFrames, Is.EqualTo(baseline - 2));
        Assert.That(table.Stats, Is.EqualTo(new PageTableStats { RootTables = 1, PdptTables = 1 }));

        table.FreeEmptyTables(At(0), At(FiveTwelveGiB));

        Assert.That(memory.FreeFrames, Is.EqualTo(baseline - 1));
        Assert.That(table.Stats, Is.EqualTo(new PageTableStats { RootTables = 1 }));
        Assert.That(tables.Select(pfn => memory.IsFree(pfn)), Is.All.True);
        Assert.That(memory.IsFree(table.RootPfn), Is.False);
        Assert.That(memory.FrameBytes(table.RootPfn).IndexOfAnyExcept((byte)0), Is.EqualTo(-1));
        Assert.That(table.TryLock(At(start), allocate: false, out _), Is.False);

        // The tables come back on demand.
        Set(table, start, Tagged(1));
        Assert.That(table.Read(At(start)), Is.EqualTo(Tagged(1)));
        Assert.That(table.TablePages, Is.EqualTo(4));
    }

    [Test]
    public void Gathering_UnlinksTheTablesButLeavesTheFreeToTheCaller()
    {
        using var memory = CreateMemory();
        var baseline = memory.FreeFrames;
        using var table = new HostPageTable(memory, 0);
        var tables = Populate(table, 0, 2 * TwoMiB);
        Clear(table, 0, 2 * TwoMiB);
        var gathered = new List<Pfn>();

        table.FreeEmptyTables(At(0), At(FiveTwelveGiB), gathered);

        Assert.That(gathered, Is.EquivalentTo(tables));
        Assert.That(table.Stats, Is.EqualTo(new PageTableStats { RootTables = 1 }));
        Assert.That(table.Read(At(0)), Is.EqualTo(HostPte.None));
        Assert.That(gathered.Select(pfn => memory.IsFree(pfn)), Is.All.False);
        Assert.That(gathered.Select(pfn => memory.Frame(pfn).Has(FrameFlags.PageTable)), Is.All.False);

        gathered.ForEach(pfn => memory.Put(pfn));

        Assert.That(memory.FreeFrames, Is.EqualTo(baseline - 1));
    }

    [Test]
    public void TablesWithLiveEntries_AndTheirParents_AreKept()
    {
        using var memory = CreateMemory();
        using var table = new HostPageTable(memory, 0);
        var start = OneGiB - (2 * TwoMiB);
        var end = OneGiB + (2 * TwoMiB);
        Populate(table, start, end);
        Clear(table, start, end);
        var live = OneGiB + TwoMiB + (9 * Page);
        Set(table, live, HostPteEncoding.MakeSwap(42)); // non-present entries keep their table too

        table.FreeEmptyTables(At(0), At(2 * OneGiB));

        Assert.That(table.Stats, Is.EqualTo(new PageTableStats { RootTables = 1, PdptTables = 1, PdTables = 1, PteTables = 1 }));
        Assert.That(table.Read(At(live)), Is.EqualTo(HostPteEncoding.MakeSwap(42)));
    }

    [Test]
    public void TablesOnlyPartlyInsideTheRange_AreKept()
    {
        using var memory = CreateMemory();
        using var table = new HostPageTable(memory, 0);
        Populate(table, TwoMiB, 3 * TwoMiB);
        Clear(table, TwoMiB, 3 * TwoMiB);

        table.FreeEmptyTables(At(TwoMiB + Page), At(3 * TwoMiB));

        // The PTE table of [2M, 4M) reaches outside the range; [4M, 6M) is inside; the PD of GiB 0 reaches outside.
        Assert.That(table.Stats, Is.EqualTo(new PageTableStats { RootTables = 1, PdptTables = 1, PdTables = 1, PteTables = 1 }));
        Assert.That(table.TryLock(At(TwoMiB), allocate: false, out var kept), Is.True);
        kept.Dispose();
        Assert.That(table.TryLock(At(2 * TwoMiB), allocate: false, out _), Is.False);
    }

    [Test]
    public void AMovedAwayRange_CanBeFreedAfterMoveEntries()
    {
        using var memory = CreateMemory();
        var baseline = memory.FreeFrames;
        using var table = new HostPageTable(memory, 0);
        Populate(table, 0, 2 * TwoMiB);
        var visitor = new MoveRecorder(table, 5 * OneGiB);
        table.MoveEntries(At(0), At(5 * OneGiB), (2 * TwoMiB) / Page, ref visitor);

        table.FreeEmptyTables(At(0), At(2 * TwoMiB));

        // Old side: its two PTE tables go, its PD stays (it maps a whole GiB, only 4 MiB was freed).
        Assert.That(table.Stats, Is.EqualTo(new PageTableStats { RootTables = 1, PdptTables = 1, PdTables = 2, PteTables = 2 }));
        Assert.That(memory.FreeFrames, Is.EqualTo(baseline - 6));
        Assert.That(table.CountEntries(At(5 * OneGiB), At((5 * OneGiB) + (2 * TwoMiB))).Present, Is.EqualTo(1024));
    }

    /// <summary>Makes every page of [start, end) present; returns the table frames below the root.</summary>
    private static List<Pfn> Populate(HostPageTable table, ulong start, ulong end)
    {
        var before = new HashSet<Pfn>(AllocatedFrames(table.Memory));
        var visitor = new FillVisitor();
        table.Walk(At(start), At(end), allocate: true, ref visitor);
        return AllocatedFrames(table.Memory).Where(pfn => !before.Contains(pfn)).ToList();
    }

    private static void Clear(HostPageTable table, ulong start, ulong end)
    {
        var visitor = new ClearVisitor();
        table.Walk(At(start), At(end), allocate: false, ref visitor);
    }

    private static IEnumerable<Pfn> AllocatedFrames(HostMemory memory)
    {
        for (ulong value = 0; value < (ulong)memory.TotalFrames; value++)
        {
            if (!memory.IsFree(new Pfn(value)))
            {
                yield return new Pfn(value);
            }
        }
    }

    private struct FillVisitor : IPteVisitor
    {
        public readonly bool VisitTable(Hva firstAddress, Span<ulong> entries, Pfn tablePfn)
        {
            entries.Fill(Tagged(0x77).Value);
            return true;
        }
    }

    private struct ClearVisitor : IPteVisitor
    {
        public readonly bool VisitTable(Hva firstAddress, Span<ulong> entries, Pfn tablePfn)
        {
            entries.Clear();
            return true;
        }
    }
}
