using Hypervisor.HostMm.Frames;
using Hypervisor.HostMm.PageTables;
using Hypervisor.Notifier;
using static Hypervisor.HostMm.Tests.PageTables.PageTableTestSupport;

namespace Hypervisor.HostMm.Tests.PageTables;

public sealed class HostPageTableTests
{
    [Test]
    public void New_HasOneZeroedRootFlaggedAsPageTableOnTheGivenNode()
    {
        using var memory = CreateMemory();
        var baseline = memory.FreeFrames;

        using var table = new HostPageTable(memory, node: 1);

        Assert.That(table.TablePages, Is.EqualTo(1));
        Assert.That(table.Stats, Is.EqualTo(new PageTableStats { RootTables = 1 }));
        Assert.That(memory.FreeFrames, Is.EqualTo(baseline - 1));
        Assert.That(memory.NodeOf(table.RootPfn), Is.EqualTo(1));
        Assert.That(memory.Frame(table.RootPfn).Has(FrameFlags.PageTable), Is.True);
        Assert.That(memory.FrameBytes(table.RootPfn).IndexOfAnyExcept((byte)0), Is.EqualTo(-1));
        Assert.That(table.Memory, Is.SameAs(memory));
    }

    [Test]
    public void New_OnAMissingNode_IsRejectedNamingTheNode()
    {
        using var memory = CreateMemory();
        Assert.That(
            () => new HostPageTable(memory, node: 2),
            Throws.TypeOf<ArgumentOutOfRangeException>().With.Message.Contains("node 2"));
    }

    [Test]
    public void Read_OfAnEmptyTable_IsNoneAndAllocatesNothing()
    {
        using var memory = CreateMemory();
        using var table = new HostPageTable(memory, 0);

        Assert.That(table.Read(At(0x7000_1234_5000)), Is.EqualTo(HostPte.None));
        Assert.That(table.TablePages, Is.EqualTo(1));
    }

    [Test]
    public void TryLock_WithoutAllocate_FailsOnAMissingTable()
    {
        using var memory = CreateMemory();
        using var table = new HostPageTable(memory, 0);

        Assert.That(table.TryLock(At(0x40_0000), allocate: false, out var pte), Is.False);
        Assert.That(pte.IsHeld, Is.False);
        Assert.That(table.TablePages, Is.EqualTo(1));
    }

    [Test]
    public void TryLock_WithAllocate_PopulatesEveryLevel_HoldsTheLockUntilDispose_AndTheWriteIsRead()
    {
        using var memory = CreateMemory();
        using var table = new HostPageTable(memory, 1);
        var address = (3 * OneGiB) + (5 * TwoMiB) + (7 * Page) + 0x123; // unaligned: the page is meant
        var value = Tagged(0x42);
        Pfn ptePfn;

        Assert.That(table.TryLock(At(address), allocate: true, out var pte), Is.True);
        using (pte)
        {
            ptePfn = pte.TablePfn;
            Assert.That(pte.Address, Is.EqualTo(At(address).PageAligned));
            Assert.That(pte.Value, Is.EqualTo(HostPte.None));
            Assert.That(memory.Frame(ptePfn).Has(FrameFlags.Locked), Is.True);
            pte.Value = value;
            Assert.That(pte.Value, Is.EqualTo(value));
        }

        Assert.That(memory.Frame(ptePfn).Has(FrameFlags.Locked), Is.False);
        Assert.That(table.Read(At(address)), Is.EqualTo(value));
        Assert.That(table.Read(At(address + Page)), Is.EqualTo(HostPte.None));
        Assert.That(table.Stats, Is.EqualTo(new PageTableStats { RootTables = 1, PdptTables = 1, PdTables = 1, PteTables = 1 }));

        // A second lock in the same PTE table populates nothing more and finds the same table.
        Assert.That(table.TryLock(At(address + Page), allocate: false, out var neighbour), Is.True);
        using (neighbour)
        {
            Assert.That(neighbour.TablePfn, Is.EqualTo(ptePfn));
        }

        Assert.That(table.TablePages, Is.EqualTo(4));
        Assert.That(memory.Frame(ptePfn).Has(FrameFlags.PageTable), Is.True);
        Assert.That(memory.NodeOf(ptePfn), Is.EqualTo(1));
    }

    [Test]
    public unsafe void UpperLevelEntries_ArePresentWritableUserPointersToTheChildTable() // unsafe: inspects the root frame.
    {
        using var memory = CreateMemory();
        using var table = new HostPageTable(memory, 0);
        var address = (2 * FiveTwelveGiB) + (3 * OneGiB);
        Set(table, address, Tagged(1));

        var root = (ulong*)memory.FrameAddress(table.RootPfn);
        var rootEntry = new HostPte(root[2]);
        var pdpt = (ulong*)memory.FrameAddress(rootEntry.Pfn);
        var pdptEntry = new HostPte(pdpt[3]);

        Assert.That(rootEntry.Value & ~HostPte.PfnMask, Is.EqualTo(HostPte.PresentBit | HostPte.WritableBit | HostPte.UserBit));
        Assert.That(memory.Frame(rootEntry.Pfn).Has(FrameFlags.PageTable), Is.True);
        Assert.That(pdptEntry.IsPresent && pdptEntry.IsWritable, Is.True);
        Assert.That(memory.Frame(pdptEntry.Pfn).Has(FrameFlags.PageTable), Is.True);
        Assert.That(root[0] | root[1] | root[3] | pdpt[2] | pdpt[4], Is.Zero);
    }

    [Test]
    public void PteLock_AfterDispose_RefusesAccess_AndASecondDisposeDoesNothing()
    {
        using var memory = CreateMemory();
        using var table = new HostPageTable(memory, 0);
        Assert.That(table.TryLock(At(0x1000), allocate: true, out var pte), Is.True);
        var tablePfn = pte.TablePfn;

        pte.Dispose();
        pte.Dispose();

        Assert.That(pte.IsHeld, Is.False);
        Assert.That(memory.Frame(tablePfn).Has(FrameFlags.Locked), Is.False);
        InvalidOperationException? refused = null;
        try
        {
            _ = pte.Value;
        }
        catch (InvalidOperationException ex)
        {
            refused = ex;
        }

        Assert.That(refused?.Message, Does.Contain("0x1000").And.Contain("not held"));
    }

    [Test]
    public void Addresses_AtOrBeyondTheUserLimit_AreRejectedNamingTheValue()
    {
        using var memory = CreateMemory();
        using var table = new HostPageTable(memory, 0);
        var beyond = At(1UL << 47);

        Assert.That(() => table.Read(beyond), Throws.TypeOf<InvalidRangeException>().With.Message.Contains("0x800000000000").And.Message.Contains("47-bit"));
        Assert.That(() => table.TryLock(beyond, allocate: true, out _), Throws.TypeOf<InvalidRangeException>().With.Message.Contains("0x800000000000"));
        Assert.That(() => table.Read(At(ulong.MaxValue)), Throws.TypeOf<InvalidRangeException>().With.Message.Contains("0xffffffffffffffff"));

        var lastPage = At((1UL << 47) - Page);
        Set(table, lastPage.Value, Tagged(9));
        Assert.That(table.Read(lastPage), Is.EqualTo(Tagged(9)));
    }

    [Test]
    public void Walk_BadRanges_AreRejectedNamingTheValues()
    {
        using var memory = CreateMemory();
        using var table = new HostPageTable(memory, 0);
        var visitor = new SegmentRecorder(memory);

        Assert.That(
            () => table.Walk(At(0x1800), At(0x4000), allocate: false, ref visitor),
            Throws.TypeOf<InvalidRangeException>().With.Message.Contains("0x1800").And.Message.Contains("page-aligned"));
        Assert.That(
            () => table.Walk(At(0x1000), At(0x4010), allocate: false, ref visitor),
            Throws.TypeOf<InvalidRangeException>().With.Message.Contains("0x4010"));
        Assert.That(
            () => table.Walk(At(0x4000), At(0x4000), allocate: false, ref visitor),
            Throws.TypeOf<InvalidRangeException>().With.Message.Contains("empty"));
        Assert.That(
            () => table.Walk(At(0x4000), At(0x1000), allocate: false, ref visitor),
            Throws.TypeOf<InvalidRangeException>().With.Message.Contains("reversed"));
        Assert.That(
            () => table.Walk(At((1UL << 47) - Page), At((1UL << 47) + Page), allocate: false, ref visitor),
            Throws.TypeOf<InvalidRangeException>().With.Message.Contains("0x800000001000").And.Message.Contains("47-bit"));
        Assert.That(
            () => table.FreeEmptyTables(At(0x1000), At(0x1001)),
            Throws.TypeOf<InvalidRangeException>().With.Message.Contains("0x1001"));
        Assert.That(visitor.Segments, Is.Empty);
    }

    [Test]
    public void CountEntries_CountsEachKind()
    {
        using var memory = CreateMemory();
        using var table = new HostPageTable(memory, 0);
        Set(table, 0x1000, Tagged(1));
        Set(table, 0x2000, HostPte.Present(new Pfn(2), HostPte.UserBit));
        Set(table, 0x3000, HostPteEncoding.MakeSwap(3));
        Set(table, TwoMiB, HostPteEncoding.MakeMigration(new Pfn(4), writable: true, young: false, dirty: false));
        Set(table, OneGiB, HostPteEncoding.MakeProtNone(Tagged(5)));

        var counts = table.CountEntries(At(0), At(2 * OneGiB));

        Assert.That(counts, Is.EqualTo(new PteCounts { Present = 2, Writable = 1, Swap = 1, Migration = 1, ProtNone = 1 }));
        Assert.That(counts.NonNone, Is.EqualTo(5));
        Assert.That(table.CountEntries(At(0x2000), At(TwoMiB)).NonNone, Is.EqualTo(2));
    }

    [Test]
    public void Dispose_ReturnsEveryTableFrame_IsIdempotent_AndLaterUseIsRefused()
    {
        using var memory = CreateMemory();
        var baseline = memory.FreeFrames;
        var table = new HostPageTable(memory, 0);
        var frames = new List<Pfn> { table.RootPfn };
        foreach (var address in new[] { 0x1000UL, 5 * TwoMiB, 7 * OneGiB, 3 * FiveTwelveGiB, (1UL << 47) - Page })
        {
            Assert.That(table.TryLock(At(address), allocate: true, out var pte), Is.True);
            using (pte)
            {
                frames.Add(pte.TablePfn);
                pte.Value = Tagged(address >> 12);
            }
        }

        Assert.That(table.Stats, Is.EqualTo(new PageTableStats { RootTables = 1, PdptTables = 3, PdTables = 4, PteTables = 5 }));
        Assert.That(memory.FreeFrames, Is.EqualTo(baseline - 13));

        table.Dispose();
        table.Dispose();

        Assert.That(memory.FreeFrames, Is.EqualTo(baseline));
        Assert.That(table.TablePages, Is.Zero);
        Assert.That(frames.Select(pfn => memory.IsFree(pfn)), Is.All.True);
        Assert.That(frames.Select(pfn => memory.Frame(pfn).Has(FrameFlags.PageTable)), Is.All.False);
        Assert.That(() => table.Read(At(0x1000)), Throws.TypeOf<ObjectDisposedException>());
        var visitor = new SegmentRecorder(memory);
        Assert.That(() => table.Walk(At(0), At(Page), allocate: true, ref visitor), Throws.TypeOf<ObjectDisposedException>());
    }
}
