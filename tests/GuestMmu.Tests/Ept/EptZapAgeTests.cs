using Hypervisor.GuestMmu.Addresses;
using Hypervisor.GuestMmu.Ept;
using Hypervisor.Notifier;

namespace Hypervisor.GuestMmu.Tests.Ept;

[Parallelizable(ParallelScope.All)]
public sealed class EptZapAgeTests(EptVectorWidth width) : VectorPathFixture(width)
{
    private static readonly Spte CleanTemplate = Spte.Leaf(new Pfn(0), writable: true, executable: true, large: false, accessed: true);

    [Test]
    public void Zap_UnalignedRangeOverDenseLeaves_ZapsExactlyTheRangeAndReportsEachDirtyFrameInOrder()
    {
        using var ept = NewTable();
        var first = new Gfn(100);
        var last = first + 3000;
        ept.PopulateLeaves(first, last, new Pfn(0x10000), CleanTemplate);
        var dirtyGfns = new List<ulong>();
        for (var g = first.Value; g < last.Value; g += 7)
        {
            Assert.That(ept.TrySetAccessedDirty(new Gfn(g), ept.Read(new Gfn(g)), dirty: true), Is.True);
            dirtyGfns.Add(g);
        }

        var tables = ept.Tables;
        var start = first + 13;
        var end = first + 2900;
        var sink = new RecordingSink();
        var result = ept.ZapLeaves(start, end, ref sink);

        var expectedDirty = dirtyGfns.Where(g => g >= start.Value && g < end.Value).ToList();
        Assert.That(result.Zapped, Is.EqualTo(2887));
        Assert.That(result.ZappedFrames, Is.EqualTo(2887));
        Assert.That(result.Dirty, Is.EqualTo(expectedDirty.Count));
        Assert.That(result.FlushNeeded, Is.True);
        Assert.That(sink.Reports, Is.EqualTo(expectedDirty.Select(g => (new Gfn(g), new Pfn(0x10000 + g - 100), 1))));
        Assert.That(ept.CountPresentLeaves(), Is.EqualTo(3000 - 2887));
        Assert.That(ept.PresentLeaves, Is.EqualTo(3000 - 2887));
        Assert.That(ept.Read(new Gfn(start.Value - 1)).IsPresent, Is.True);
        Assert.That(ept.Read(start).IsPresent, Is.False);
        Assert.That(ept.Read(new Gfn(end.Value - 1)).IsPresent, Is.False);
        Assert.That(ept.Read(end).IsPresent, Is.True);
        Assert.That(ept.Tables, Is.EqualTo(tables), "leaf zaps keep the tables");

        var again = ept.ZapLeaves(start, end, ref sink);
        Assert.That(again, Is.EqualTo(new ZapResult(0, 0, 0, 0)));
        Assert.That(again.FlushNeeded, Is.False);
        var stats = ept.GetStats();
        Assert.That(stats.Zaps, Is.EqualTo(2));
        Assert.That(stats.ZappedLeaves, Is.EqualTo(2887));
        Assert.That(stats.DirtyLeaves, Is.EqualTo(expectedDirty.Count));
    }

    [Test]
    public void Zap_LargeLeafOverlappingTheRange_IsZappedWholeAndReportedAtItsLevel()
    {
        using var ept = NewTable();
        var large = Spte.Leaf(new Pfn(0x2000), true, true, large: true, accessed: true).WithAccessed(dirty: true);
        Assert.That(ept.TryInstallLeaf(new Gfn(0x600), 2, Spte.Empty, large), Is.True);
        ept.PopulateLeaves(new Gfn(0x5F0), new Gfn(0x600), new Pfn(1), CleanTemplate);
        var sink = new RecordingSink();
        var result = ept.ZapLeaves(new Gfn(0x5F8), new Gfn(0x601), ref sink);
        Assert.That(result, Is.EqualTo(new ZapResult(8 + 1, 8 + 512, 1, 0)));
        Assert.That(sink.Reports, Is.EqualTo(new[] { (new Gfn(0x600), new Pfn(0x2000), 2) }));
        Assert.That(ept.Read(new Gfn(0x7FF), out var level), Is.EqualTo(Spte.Empty));
        Assert.That(level, Is.EqualTo(2));
    }

    [Test]
    public void Zap_WithoutAccessDirtyBits_TreatsWritableLeavesAsDirty()
    {
        using var ept = NewTable(accessDirtyEnabled: false);
        ept.PopulateLeaves(new Gfn(0), new Gfn(40), new Pfn(0x100), CleanTemplate);
        ept.PopulateLeaves(new Gfn(40), new Gfn(50), new Pfn(0x200), Spte.Leaf(new Pfn(0), false, false, false, true));
        var sink = new RecordingSink();
        var result = ept.ZapLeaves(new Gfn(0), new Gfn(50), ref sink);
        Assert.That(result.Zapped, Is.EqualTo(50));
        Assert.That(result.Dirty, Is.EqualTo(40), "writable leaves may have been written: A/D off cannot tell");
        Assert.That(sink.Reports.Select(r => r.Gfn.Value), Is.EqualTo(Enumerable.Range(0, 40).Select(i => (ulong)i)));
    }

    [Test]
    public void Kernels_OnRandomEntries_GiveTheScalarResults([Values] HardwareAdPolicy policy)
    {
        for (var seed = 1; seed <= 6; seed++)
        {
            var random = new Random(seed);
            var start = (ulong)random.Next(0, 600);
            var end = start + 1 + (ulong)random.Next(0, 1500);
            foreach (var op in Enum.GetValues<Op>())
            {
                var expected = Run(EptVectorWidth.Scalar, seed, policy, op, start, end);
                var actual = Run(Width, seed, policy, op, start, end);
                Assert.That(actual.Entries, Is.EqualTo(expected.Entries), $"{op} seed {seed} [{start}, {end}): table contents");
                Assert.That(actual.Counts, Is.EqualTo(expected.Counts), $"{op} seed {seed}: counts");
                Assert.That(actual.Reports, Is.EqualTo(expected.Reports), $"{op} seed {seed}: dirty reports");
            }
        }
    }

    [Test]
    public void Kernels_OnRandomEntries_MatchAnIndependentModel()
    {
        var random = new Random(99);
        var entries = RandomEntries(random, 2048);
        using var ept = NewTable();
        Load(ept, entries);
        var sink = new RecordingSink();
        var zap = ept.ZapLeaves(new Gfn(3), new Gfn(2041), ref sink);
        var slice = entries[3..2041];
        Assert.That(zap.Zapped, Is.EqualTo(slice.Count(e => (e & Spte.MmuPresentBit) != 0)));
        Assert.That(zap.Dirty, Is.EqualTo(slice.Count(e => (e & (Spte.MmuPresentBit | Spte.DirtyBit)) == (Spte.MmuPresentBit | Spte.DirtyBit))));
        var after = Snapshot(ept, 2048);
        for (var i = 0; i < 2048; i++)
        {
            var inRange = i is >= 3 and < 2041;
            var expected = inRange && (entries[i] & Spte.MmuPresentBit) != 0 ? 0 : entries[i];
            Assert.That(after[i], Is.EqualTo(expected), $"entry {i}: non-present values survive a zap untouched");
        }
    }

    [Test]
    public void Zap_DenseTablesWithSparseExceptions_MatchesAnIndependentModel([Values] HardwareAdPolicy policy, [Values] bool accessDirty)
    {
        // Mostly clean present leaves (the dense fast steps of every path), broken at seeded spots by a dirty,
        // writable, empty or junk entry, so each step size (4 scalar, 8/16 per vector step) meets every kind
        // of exception in every lane and the transitions between the fast, exact and reporting loops are hit.
        var clean = Spte.Leaf(new Pfn(0), writable: false, executable: true, large: false, accessed: true).Value;
        for (var seed = 1; seed <= 12; seed++)
        {
            var random = new Random(seed);
            var entries = new ulong[2048];
            for (var i = 0; i < entries.Length; i++)
            {
                var pfn = (ulong)(0x1000 + i) << Spte.PfnShift;
                entries[i] = (random.Next(seed % 3 == 0 ? 6 : 40)) switch
                {
                    0 => clean | pfn | Spte.DirtyBit,
                    1 => clean | pfn | Spte.WritableBit | Spte.MmuWritableBit | Spte.HostWritableBit,
                    2 => 0,
                    3 => Spte.FrozenValue,
                    4 => clean | pfn | Spte.WritableBit | Spte.DirtyBit | Spte.MmuWritableBit | Spte.HostWritableBit,
                    _ => clean | pfn,
                };
            }

            var start = (ulong)random.Next(0, 40);
            var end = (ulong)entries.Length - (ulong)random.Next(0, 40);
            using var ept = NewTable(accessDirtyEnabled: accessDirty, policy: policy);
            Load(ept, entries);
            var sink = new RecordingSink();
            var result = ept.ZapLeaves(new Gfn(start), new Gfn(end), ref sink);

            var dirtyMask = accessDirty ? Spte.DirtyBit : Spte.DirtyBit | Spte.WritableBit;
            var present = Enumerable.Range((int)start, (int)(end - start)).Where(i => (entries[i] & Spte.MmuPresentBit) != 0).ToList();
            var dirty = present.Where(i => (entries[i] & dirtyMask) != 0).ToList();
            Assert.That(result, Is.EqualTo(new ZapResult(present.Count, present.Count, dirty.Count, 0)), $"seed {seed}");
            Assert.That(sink.Reports, Is.EqualTo(dirty.Select(i => (new Gfn((ulong)i), new Pfn(0x1000 + (ulong)i), 1))), $"seed {seed}: reports in gfn order");
            var after = Snapshot(ept, entries.Length);
            for (var i = 0; i < entries.Length; i++)
            {
                var zapped = (ulong)i >= start && (ulong)i < end && (entries[i] & Spte.MmuPresentBit) != 0;
                Assert.That(after[i], Is.EqualTo(zapped ? 0 : entries[i]), $"seed {seed}, entry {i}");
            }
        }
    }

    [Test]
    public void AgeAccessed_CountsYoung_ClearsOnlyTheAccessedBit_AndASecondPassFindsNone()
    {
        using var ept = NewTable();
        ept.PopulateLeaves(new Gfn(0), new Gfn(1000), new Pfn(0x100), CleanTemplate);
        ept.PopulateLeaves(new Gfn(1000), new Gfn(1100), new Pfn(0x900), Spte.Leaf(new Pfn(0), true, false, false, accessed: false));
        ept.TrySetAccessedDirty(new Gfn(5), ept.Read(new Gfn(5)), dirty: true);

        var test = ept.AgeLeaves(new Gfn(0), new Gfn(1100), clear: false, AgingMode.AccessedBit);
        Assert.That(test, Is.EqualTo(new AgeResult(1000, 0, 0)));
        Assert.That(ept.TestYoung(new Gfn(999)), Is.True);
        Assert.That(ept.TestYoung(new Gfn(1000)), Is.False);

        var clear = ept.AgeLeaves(new Gfn(1), new Gfn(1100), clear: true, AgingMode.AccessedBit);
        Assert.That(clear, Is.EqualTo(new AgeResult(999, 999, 0)));
        Assert.That(clear.AnyYoung, Is.True);
        Assert.That(ept.TestYoung(new Gfn(0)), Is.True, "outside the range");
        Assert.That(ept.TestYoung(new Gfn(1)), Is.False);
        Assert.That(ept.Read(new Gfn(5)).IsDirty, Is.True, "aging never drops D");
        Assert.That(ept.Read(new Gfn(7)), Is.EqualTo(Spte.Leaf(new Pfn(0x107), true, true, false, accessed: false)));
        Assert.That(ept.AgeLeaves(new Gfn(1), new Gfn(1100), clear: true, AgingMode.AccessedBit).AnyYoung, Is.False);
        Assert.That(ept.PresentLeaves, Is.EqualTo(1100), "aging never zaps");
        var stats = ept.GetStats();
        Assert.That(stats.Ages, Is.EqualTo(3));
        Assert.That(stats.AgedYoung, Is.EqualTo(1999));
        Assert.That(stats.YoungTests, Is.EqualTo(4));
        Assert.That(stats.YoungHits, Is.EqualTo(2));
    }

    [Test]
    public void ClearAccessedBitmap_SetsTheBitOfEachYoungPageAtItsOffset_ClearsOnlyThose_AndASecondPassFindsNone()
    {
        using var ept = NewTable();
        var old = Spte.Leaf(new Pfn(0), true, false, false, accessed: false);
        ept.PopulateLeaves(new Gfn(0), new Gfn(1100), new Pfn(0x100), old);
        ulong[] youngGfns = [3, 64, 65, 511, 512, 700, 1099];
        foreach (var g in youngGfns)
        {
            Assert.That(ept.TrySetAccessedDirty(new Gfn(g), ept.Read(new Gfn(g)), dirty: false), Is.True);
        }

        Assert.That(ept.TrySetAccessedDirty(new Gfn(2), ept.Read(new Gfn(2)), dirty: false), Is.True); // outside the range
        var bitmap = new ulong[20];
        bitmap[0] = 1; // bits outside the pages found young stay as they were

        var found = ept.ClearAccessedBitmap(new Gfn(3), new Gfn(1100), bitmap, firstBit: 5);

        Assert.That(found, Is.EqualTo(youngGfns.Length));
        for (var bit = 0; bit < 64 * bitmap.Length; bit++)
        {
            var expected = bit == 0 || youngGfns.Contains((ulong)(bit - 5 + 3));
            Assert.That((bitmap[bit >> 6] >> (bit & 63)) & 1, Is.EqualTo(expected ? 1UL : 0UL), $"bit {bit}");
        }

        Assert.That(youngGfns.Select(g => ept.TestYoung(new Gfn(g))), Is.All.False, "their accessed bits were cleared");
        Assert.That(ept.TestYoung(new Gfn(2)), Is.True, "outside the range");
        Assert.That(ept.PresentLeaves, Is.EqualTo(1100), "aging never zaps");
        Array.Clear(bitmap);
        Assert.That(ept.ClearAccessedBitmap(new Gfn(3), new Gfn(1100), bitmap), Is.Zero);
        Assert.That(bitmap, Is.All.EqualTo(0UL));
        Assert.Throws<ArgumentException>(() => ept.ClearAccessedBitmap(new Gfn(0), new Gfn(1100), new ulong[17]));
    }

    [Test]
    public void AgeTracking_TracksYoungLeaves_ReportsWritableOnes_AndAFaultRestoresThem()
    {
        using var ept = NewTable(accessDirtyEnabled: false);
        ept.PopulateLeaves(new Gfn(0), new Gfn(600), new Pfn(0x100), CleanTemplate);
        ept.PopulateLeaves(new Gfn(600), new Gfn(700), new Pfn(0x900), Spte.Leaf(new Pfn(0), false, true, false, true));
        Assert.That(ept.TestYoung(new Gfn(650)), Is.True, "with A/D off every non-tracked leaf counts as young");
        Assert.Throws<ArgumentException>(() => ept.AgeLeaves(new Gfn(0), new Gfn(700), clear: false, AgingMode.AccessedBit));
        Assert.Throws<ArgumentException>(() => ept.AgeLeaves(new Gfn(0), new Gfn(700), clear: true, AgingMode.AccessTracking));

        var sink = new RecordingSink();
        var result = ept.AgeLeaves(new Gfn(10), new Gfn(700), clear: true, AgingMode.AccessTracking, ref sink);
        Assert.That(result, Is.EqualTo(new AgeResult(690, 690, 590)));
        Assert.That(sink.Reports.Select(r => r.Gfn.Value), Is.EqualTo(Enumerable.Range(10, 590).Select(i => (ulong)i)));
        var tracked = ept.Read(new Gfn(20));
        Assert.That(tracked.IsAccessTracked && tracked.IsPresent, Is.True);
        Assert.That(ept.TestYoung(new Gfn(20)), Is.False);
        Assert.That(ept.TestYoung(new Gfn(9)), Is.True);
        Assert.That(ept.AgeLeaves(new Gfn(10), new Gfn(700), clear: false, AgingMode.AccessTracking).AnyYoung, Is.False);

        // The fast fault restores R/X (and A) with a compare-and-swap; W comes back separately because MMU-writable stayed.
        Assert.That(ept.TryInstallLeaf(new Gfn(20), 1, tracked, tracked.RestoreFromAccessTrack()), Is.True);
        Assert.That(ept.TestYoung(new Gfn(20)), Is.True);
        Assert.That(ept.Read(new Gfn(20)).IsMmuWritable, Is.True);
    }

    [Test]
    public void Age_LargeLeaf_IsAgedOnce()
    {
        using var ept = NewTable();
        Assert.That(ept.TryInstallLeaf(new Gfn(0x40000), 2, Spte.Empty, Spte.Leaf(new Pfn(0x200), true, true, true, true)), Is.True);
        var result = ept.AgeLeaves(new Gfn(0x40010), new Gfn(0x40011), clear: true, AgingMode.AccessedBit);
        Assert.That(result, Is.EqualTo(new AgeResult(1, 1, 0)));
        Assert.That(ept.TestYoung(new Gfn(0x401FF)), Is.False);
    }

    [Test]
    public void ZapAll_ReportsDirty_RetiresEveryTableButTheRoot_AndTheTableIsReusable()
    {
        using var arena = new EptArena();
        var ept = NewTable(arena);
        ept.PopulateLeaves(new Gfn(0x3FF00), new Gfn(0x40100), new Pfn(1), CleanTemplate);
        ept.TryInstallLeaf(new Gfn(5UL << 27), 2, Spte.Empty, Spte.Leaf(new Pfn(0x400), true, true, true, true).WithAccessed(dirty: true));
        ept.TrySetAccessedDirty(new Gfn(0x40000), ept.Read(new Gfn(0x40000)), dirty: true);
        var tables = ept.Tables;
        Assert.That(tables, Is.EqualTo(1 + 1 + 2 + 2 + 1 + 1));

        var sink = new RecordingSink();
        var result = ept.ZapAll(ref sink);
        Assert.That(result.Zapped, Is.EqualTo(513));
        Assert.That(result.TablesFreed, Is.EqualTo(tables - 1));
        Assert.That(sink.Reports, Is.EqualTo(new[] { (new Gfn(0x40000), new Pfn(0x101), 1), (new Gfn(5UL << 27), new Pfn(0x400), 2) }));
        Assert.That(ept.Tables, Is.EqualTo(1));
        Assert.That(ept.GetStats().RetiredTables, Is.EqualTo(tables - 1));
        Assert.That(arena.TablesInUse, Is.EqualTo(tables), "retired tables wait for the grace period");
        Assert.That(arena.Table(ept.RootTable).ToArray(), Is.All.Zero, "the root stays, empty");
        Assert.That(ept.ReclaimRetiredTables(), Is.EqualTo(tables - 1));
        Assert.That(arena.TablesInUse, Is.EqualTo(1));
        Assert.That(ept.CountPresentLeaves(), Is.Zero);
        Assert.That(ept.PresentLeaves, Is.Zero);

        Assert.That(ept.TryInstallLeaf(new Gfn(0x40000), 1, Spte.Empty, CleanTemplate), Is.True);
        ept.ZapAll();
        Assert.That(arena.TablesInUse, Is.EqualTo(1));
        ept.Dispose();
        Assert.That(arena.TablesInUse, Is.Zero, "disposing a table in a shared arena returns the root too");
    }

    private enum Op
    {
        Zap,
        AgeAccessedTest,
        AgeAccessedClear,
        AgeTrackingTest,
        AgeTrackingClear,
        Count,
    }

    private static (ulong[] Entries, long[] Counts, List<(Gfn, Pfn, int)> Reports) Run(
        EptVectorWidth path, int seed, HardwareAdPolicy policy, Op op, ulong start, ulong end)
    {
        var random = new Random(seed);
        var entries = RandomEntries(random, 2048);
        using var ept = new EptPageTable(policy: policy, vectorWidth: path);
        Assert.That(ept.VectorWidth, Is.EqualTo(path));
        Load(ept, entries);
        var sink = new RecordingSink();
        long[] counts = op switch
        {
            Op.Zap => ToCounts(ept.ZapLeaves(new Gfn(start), new Gfn(end), ref sink)),
            Op.AgeAccessedTest => ToCounts(ept.AgeLeaves(new Gfn(start), new Gfn(end), false, AgingMode.AccessedBit, ref sink)),
            Op.AgeAccessedClear => ToCounts(ept.AgeLeaves(new Gfn(start), new Gfn(end), true, AgingMode.AccessedBit, ref sink)),
            Op.AgeTrackingTest => ToCounts(ept.AgeLeaves(new Gfn(start), new Gfn(end), false, AgingMode.AccessTracking, ref sink)),
            Op.AgeTrackingClear => ToCounts(ept.AgeLeaves(new Gfn(start), new Gfn(end), true, AgingMode.AccessTracking, ref sink)),
            _ => [ept.CountPresentLeaves(new Gfn(start), new Gfn(end))],
        };
        return (Snapshot(ept, 2048), counts, sink.Reports);
    }

    private static long[] ToCounts(ZapResult r) => [r.Zapped, r.ZappedFrames, r.Dirty];

    private static long[] ToCounts(AgeResult r) => [r.Young, r.Cleared, r.Dirty];

    private static ulong[] RandomEntries(Random random, int count)
    {
        var entries = new ulong[count];
        for (var i = 0; i < count; i++)
        {
            var pfn = (ulong)random.Next(1, 1 << 30) << Spte.PfnShift;
            entries[i] = random.Next(8) switch
            {
                0 => 0,
                1 => (ulong)random.NextInt64() & ~Spte.MmuPresentBit, // non-present junk: a zap must keep it
                _ => Spte.MmuPresentBit | pfn | (6UL << 3) | Spte.IgnorePatBit
                    | ((ulong)random.Next(8) & Spte.PermissionMask)
                    | (random.Next(2) == 0 ? Spte.AccessedBit : 0)
                    | (random.Next(3) == 0 ? Spte.DirtyBit : 0)
                    | (random.Next(2) == 0 ? Spte.MmuWritableBit | Spte.HostWritableBit : 0)
                    | (random.Next(4) == 0 ? Spte.SavedReadableBit : 0),
            };
        }

        return entries;
    }

    private static void Load(EptPageTable ept, ulong[] entries)
    {
        // Four consecutive level-1 tables from gfn 0, written directly.
        ept.PopulateLeaves(new Gfn(0), new Gfn((ulong)entries.Length), new Pfn(0), CleanTemplate);
        for (var t = 0; t < entries.Length / 512; t++)
        {
            ept.LoadLeafTable(new Gfn((ulong)t * 512), entries.AsSpan(t * 512, 512));
        }
    }

    private static ulong[] Snapshot(EptPageTable ept, int count)
    {
        var result = new ulong[count];
        for (var t = 0; t < count / 512; t++)
        {
            ept.Arena.Table(ept.ReadAt(new Gfn((ulong)t * 512), 2).TableIndex).CopyTo(result.AsSpan(t * 512, 512));
        }

        return result;
    }
}
