using Hypervisor.GuestMmu.Addresses;
using Hypervisor.GuestMmu.Ept;
using Hypervisor.Notifier;

namespace Hypervisor.GuestMmu.Tests.Ept;

/// <summary>
/// <see cref="EptPageTable.ZapLeavesUnreported"/> and <see cref="EptPageTable.ZapAllUnreported"/> (the map-time dirty
/// policy's zaps): exactly the leaves the reporting zap removes, on every kernel path and both A/D policies, but no
/// dirty bit is read, so dirty tables are cleared whole like clean ones.
/// </summary>
[Parallelizable(ParallelScope.All)]
public sealed class EptUnreportedZapTests(EptVectorWidth width) : VectorPathFixture(width)
{
    private static readonly Spte Template = Spte.Leaf(new Pfn(0), writable: true, executable: true, large: false, accessed: true);

    [TestCase(HardwareAdPolicy.DirtyUnderMmuLock, true)]
    [TestCase(HardwareAdPolicy.Lockless, true)]
    [TestCase(HardwareAdPolicy.DirtyUnderMmuLock, false)]
    public void AnUnreportedZapRemovesWhatTheReportingZapRemovesAndReportsNothing(HardwareAdPolicy policy, bool accessDirty)
    {
        using var reported = NewTable(accessDirtyEnabled: accessDirty, policy: policy);
        using var unreported = NewTable(accessDirtyEnabled: accessDirty, policy: policy);
        var first = new Gfn(100);
        var last = first + 3000;
        foreach (var ept in new[] { reported, unreported })
        {
            ept.PopulateLeaves(first, last, new Pfn(0x10000), Template);
            for (var g = first.Value; g < last.Value; g += 5)
            {
                Assert.That(ept.TrySetAccessedDirty(new Gfn(g), ept.Read(new Gfn(g)), dirty: true), Is.True);
            }
        }

        var sink = new RecordingSink();
        var expected = reported.ZapLeaves(first + 13, first + 2900, ref sink);
        var result = unreported.ZapLeavesUnreported(first + 13, first + 2900);

        Assert.That(sink.Reports, Is.Not.Empty, "the reporting zap did see dirty leaves");
        Assert.That(result, Is.EqualTo(expected with { Dirty = 0 }));
        Assert.That(unreported.GetStats().DirtyLeaves, Is.Zero);
        for (var g = first.Value - 1; g <= last.Value; g++)
        {
            Assert.That(unreported.Read(new Gfn(g)), Is.EqualTo(reported.Read(new Gfn(g))), $"gfn {g:x}");
        }

        Assert.That(unreported.PresentLeaves, Is.EqualTo(reported.PresentLeaves));
        Assert.That(unreported.CheckLeafTableCounts(), Is.Empty);
    }

    [Test]
    public void FullDirtyTablesAreClearedWholeWithoutBeingRead()
    {
        using var ept = NewTable();
        ept.PopulateLeaves(new Gfn(0), new Gfn(4 * 512), new Pfn(0x4000), Template.WithAccessed(dirty: true));

        var result = ept.ZapLeavesUnreported(new Gfn(0), new Gfn(4 * 512));

        Assert.That(result, Is.EqualTo(new ZapResult(4 * 512, 4 * 512, 0, 0)));
        Assert.That(ept.GetStats().WholeTableClears, Is.EqualTo(4), "a dirty hint does not stop the whole-table clear");
        Assert.That(ept.CountPresentLeaves(), Is.Zero);

        // The reporting zap of the same dirty tables must read them (no whole-table clear).
        ept.PopulateLeaves(new Gfn(0), new Gfn(4 * 512), new Pfn(0x4000), Template.WithAccessed(dirty: true));
        var sink = new RecordingSink();
        Assert.That(ept.ZapLeaves(new Gfn(0), new Gfn(4 * 512), ref sink).Dirty, Is.EqualTo(4 * 512));
        Assert.That(ept.GetStats().WholeTableClears, Is.EqualTo(4));
    }

    [Test]
    public void ZapAllUnreportedEmptiesTheTreeLikeZapAll()
    {
        using var ept = NewTable();
        ept.PopulateLeaves(new Gfn(0x1000), new Gfn(0x1000 + 1500), new Pfn(0x4000), Template.WithAccessed(dirty: true));
        var tables = ept.Tables;

        var result = ept.ZapAllUnreported();

        Assert.That(result.Zapped, Is.EqualTo(1500));
        Assert.That(result.Dirty, Is.Zero);
        Assert.That(result.TablesFreed, Is.EqualTo(tables - 1), "every table below the root");
        Assert.That(ept.Tables, Is.EqualTo(1));
        Assert.That(ept.CountPresentLeaves(), Is.Zero);
        ept.ReclaimRetiredTables();
    }
}
