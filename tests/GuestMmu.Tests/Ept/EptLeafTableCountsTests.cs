using Hypervisor.GuestMmu.Addresses;
using Hypervisor.GuestMmu.Ept;
using Hypervisor.Notifier;

namespace Hypervisor.GuestMmu.Tests.Ept;

/// <summary>
/// The per-leaf-table counts a zap decides whole tables by: a full clean table is cleared unread, an
/// empty one skipped, and anything that could make an entry dirty keeps the table on the reading path.
/// Every test ends with the counts recounted against the entries.
/// </summary>
[Parallelizable(ParallelScope.All)]
public sealed class EptLeafTableCountsTests(EptVectorWidth width) : VectorPathFixture(width)
{
    private static readonly Spte CleanTemplate = Spte.Leaf(new Pfn(0), writable: true, executable: true, large: false, accessed: true);

    [Test]
    public void FullCleanTable_IsClearedWithoutTheKernel()
    {
        using var ept = NewTable();
        ept.PopulateLeaves(new Gfn(512), new Gfn(1536), new Pfn(0x4000), CleanTemplate);
        var sink = new RecordingSink();
        var result = ept.ZapLeaves(new Gfn(512), new Gfn(1536), ref sink);

        Assert.That(result, Is.EqualTo(new ZapResult(1024, 1024, 0, 0)));
        Assert.That(ept.GetStats().WholeTableClears, Is.EqualTo(2));
        Assert.That(ept.CountPresentLeaves(), Is.Zero);
        Assert.That(ept.PresentLeaves, Is.Zero);
        Assert.That(sink.Reports, Is.Empty);
        Assert.That(ept.CheckLeafTableCounts(), Is.Empty);
    }

    [Test]
    public void HardwareDirtyBitInAFullTable_IsReported()
    {
        using var ept = NewTable();
        ept.PopulateLeaves(new Gfn(0), new Gfn(512), new Pfn(0x4000), CleanTemplate);
        Assert.That(ept.TrySetAccessedDirty(new Gfn(300), ept.Read(new Gfn(300)), dirty: true), Is.True);

        var sink = new RecordingSink();
        var result = ept.ZapLeaves(new Gfn(0), new Gfn(512), ref sink);

        Assert.That(result.Zapped, Is.EqualTo(512));
        Assert.That(sink.Reports, Is.EqualTo(new[] { (new Gfn(300), new Pfn(0x4000 + 300), 1) }));
        Assert.That(ept.GetStats().WholeTableClears, Is.Zero, "a table that may hold a dirty entry is read");
        Assert.That(ept.CheckLeafTableCounts(), Is.Empty);
    }

    [Test]
    public void DirtyInstallInAFullTable_IsReported()
    {
        using var ept = NewTable();
        ept.PopulateLeaves(new Gfn(0), new Gfn(511), new Pfn(0x4000), CleanTemplate);
        var dirtyLeaf = Spte.Leaf(new Pfn(0x9999), writable: true, executable: true, large: false, accessed: true).WithAccessed(dirty: true);
        Assert.That(ept.TryInstallLeaf(new Gfn(511), 1, Spte.Empty, dirtyLeaf), Is.True);
        Assert.That(ept.CheckLeafTableCounts(), Is.Empty);

        var sink = new RecordingSink();
        var result = ept.ZapLeaves(new Gfn(0), new Gfn(512), ref sink);

        Assert.That(result.Zapped, Is.EqualTo(512));
        Assert.That(sink.Reports, Is.EqualTo(new[] { (new Gfn(511), new Pfn(0x9999), 1) }));
    }

    [Test]
    public void WithoutAccessDirtyBits_AWritableInstallIsReported()
    {
        using var ept = NewTable(accessDirtyEnabled: false);
        var readOnly = Spte.Leaf(new Pfn(0), writable: false, executable: true, large: false, accessed: false);
        ept.PopulateLeaves(new Gfn(0), new Gfn(512), new Pfn(0x4000), readOnly);
        var sink = new RecordingSink();
        Assert.That(ept.ZapLeaves(new Gfn(0), new Gfn(512), ref sink).Zapped, Is.EqualTo(512));
        Assert.That(ept.GetStats().WholeTableClears, Is.EqualTo(1), "read-only leaves are clean with A/D off");

        ept.PopulateLeaves(new Gfn(0), new Gfn(512), new Pfn(0x4000), readOnly);
        var writable = Spte.Leaf(new Pfn(0x4000 + 17), writable: true, executable: true, large: false, accessed: false);
        Assert.That(ept.TryInstallLeaf(new Gfn(17), 1, ept.Read(new Gfn(17)), writable), Is.True);
        var result = ept.ZapLeaves(new Gfn(0), new Gfn(512), ref sink);

        Assert.That(result.Dirty, Is.EqualTo(1));
        Assert.That(sink.Reports, Is.EqualTo(new[] { (new Gfn(17), new Pfn(0x4000 + 17), 1) }));
        Assert.That(ept.GetStats().WholeTableClears, Is.EqualTo(1));
    }

    [Test]
    public void EmptyTable_IsSkippedAndItsNonPresentEntriesKept()
    {
        using var ept = NewTable();
        ept.PopulateLeaves(new Gfn(0), new Gfn(512), new Pfn(0x4000), CleanTemplate);
        var junk = new ulong[512];
        junk[3] = 0x5_0000_0007; // not present (bit 11 clear): a zap leaves it as it is
        ept.LoadLeafTable(new Gfn(0), junk);

        var sink = new RecordingSink();
        var result = ept.ZapLeaves(new Gfn(0), new Gfn(512), ref sink);

        Assert.That(result.Zapped, Is.Zero);
        Assert.That(ept.GetStats().EmptyTablesSkipped, Is.EqualTo(1));
        Assert.That(ept.Read(new Gfn(3)).Value, Is.EqualTo(0x5_0000_0007UL));
    }

    [Test]
    public void PartialZapsThenWholeZap_KeepTheCountsExact()
    {
        using var ept = NewTable();
        ept.PopulateLeaves(new Gfn(0), new Gfn(2048), new Pfn(0x4000), CleanTemplate);
        var sink = new RecordingSink();
        Assert.That(ept.ZapLeaves(new Gfn(100), new Gfn(700), ref sink).Zapped, Is.EqualTo(600));
        Assert.That(ept.CheckLeafTableCounts(), Is.Empty);
        Assert.That(ept.TryInstallLeaf(new Gfn(200), 1, Spte.Empty, WithPfn(CleanTemplate, 0x7000)), Is.True);
        Assert.That(ept.CheckLeafTableCounts(), Is.Empty);

        var result = ept.ZapLeaves(new Gfn(0), new Gfn(2048), ref sink);

        Assert.That(result.Zapped, Is.EqualTo(2048 - 600 + 1));
        var stats = ept.GetStats();
        Assert.That(stats.WholeTableClears, Is.EqualTo(2), "tables 2 and 3 were never touched");
        Assert.That(ept.PresentLeaves, Is.Zero);
        Assert.That(ept.CheckLeafTableCounts(), Is.Empty);
    }

    [Test]
    public void LocklessPolicy_NeverTrustsTheCleanHint()
    {
        using var ept = NewTable(policy: HardwareAdPolicy.Lockless);
        ept.PopulateLeaves(new Gfn(0), new Gfn(512), new Pfn(0x4000), CleanTemplate);
        var sink = new RecordingSink();
        Assert.That(ept.ZapLeaves(new Gfn(0), new Gfn(512), ref sink).Zapped, Is.EqualTo(512));
        Assert.That(ept.GetStats().WholeTableClears, Is.Zero);
        Assert.That(ept.CheckLeafTableCounts(), Is.Empty);
    }

    [Test]
    public void SeededOperations_MatchAModelAndKeepTheCountsExact([Values(1, 2, 3)] int seed, [Values] bool accessDirty)
    {
        const int Frames = 4 * 512;
        var random = new Random(seed);
        using var ept = NewTable(accessDirtyEnabled: accessDirty);
        var model = new ulong[Frames];
        var sink = new RecordingSink();
        var expectedReports = new List<(Gfn, Pfn, int)>();
        for (var step = 0; step < 400; step++)
        {
            switch (random.Next(6))
            {
                case 0:
                {
                    var (start, end) = RandomRange(random, Frames);
                    var template = Spte.Leaf(new Pfn(0), writable: random.Next(2) == 0, executable: true, large: false, accessed: true);
                    ept.PopulateLeaves(new Gfn(start), new Gfn(end), new Pfn(0x10000 + start), template);
                    for (var g = start; g < end; g++)
                    {
                        model[g] = WithPfn(template, 0x10000 + g).Value;
                    }

                    break;
                }

                case 1:
                case 2:
                {
                    // Single installs and removals, as the fault path and a one-entry zap make them.
                    for (var n = 0; n < 64; n++)
                    {
                        var g = (ulong)random.Next(Frames);
                        var next = random.Next(3) == 0
                            ? Spte.Empty
                            : Spte.Leaf(new Pfn(0x10000 + g), writable: random.Next(2) == 0, executable: true, large: false, accessed: true);
                        if (accessDirty && next.IsPresent && next.IsWritable && random.Next(4) == 0)
                        {
                            next = next.WithAccessed(dirty: true);
                        }

                        var current = ept.ReadAt(new Gfn(g), 1);
                        if (current.IsPresent && next.IsPresent && current.Pfn != next.Pfn)
                        {
                            continue;
                        }

                        if (ept.TryInstallLeaf(new Gfn(g), 1, current, next))
                        {
                            model[g] = next.Value;
                        }
                    }

                    break;
                }

                case 3 when accessDirty:
                {
                    for (var n = 0; n < 64; n++)
                    {
                        var g = (ulong)random.Next(Frames);
                        var current = new Spte(model[g]);
                        if (current.IsPresent && current.IsWritable && ept.TrySetAccessedDirty(new Gfn(g), current, dirty: true))
                        {
                            model[g] = current.WithAccessed(dirty: true).Value;
                        }
                    }

                    break;
                }

                default:
                {
                    // Whole tables as often as partial ranges, so both zap paths run.
                    var (start, end) = random.Next(2) == 0 ? RandomRange(random, Frames) : RandomTables(random, Frames);
                    var dirtyMask = accessDirty ? Spte.DirtyBit : Spte.DirtyBit | Spte.WritableBit;
                    var expectedZapped = 0L;
                    for (var g = start; g < end; g++)
                    {
                        if ((model[g] & Spte.MmuPresentBit) == 0)
                        {
                            continue;
                        }

                        expectedZapped++;
                        if ((model[g] & dirtyMask) != 0)
                        {
                            expectedReports.Add((new Gfn(g), new Spte(model[g]).Pfn, 1));
                        }

                        model[g] = 0;
                    }

                    Assert.That(ept.ZapLeaves(new Gfn(start), new Gfn(end), ref sink).Zapped, Is.EqualTo(expectedZapped), $"step {step}: zap [{start}, {end})");
                    break;
                }
            }

            Assert.That(ept.CheckLeafTableCounts(), Is.Empty, $"step {step}");
            Assert.That(ept.PresentLeaves, Is.EqualTo(model.Count(v => (v & Spte.MmuPresentBit) != 0)), $"step {step}");
        }

        for (var g = 0; g < Frames; g++)
        {
            var entry = ept.ReadAt(new Gfn((ulong)g), 1).Value;
            Assert.That(entry, Is.EqualTo(model[g]), $"gfn {g}");
        }

        Assert.That(sink.Reports, Is.EqualTo(expectedReports));
        var stats = ept.GetStats();
        Assert.That(stats.WholeTableClears + stats.EmptyTablesSkipped, Is.GreaterThan(0), "the seeds reach the whole-table paths");
    }

    private static Spte WithPfn(Spte template, ulong pfn) => new((template.Value & ~Spte.PfnMask) | (pfn << Spte.PfnShift));

    private static (ulong Start, ulong End) RandomRange(Random random, int frames)
    {
        var start = (ulong)random.Next(frames);
        return (start, start + 1 + (ulong)random.Next(frames - (int)start));
    }

    private static (ulong Start, ulong End) RandomTables(Random random, int frames)
    {
        var tables = frames / 512;
        var first = random.Next(tables);
        return ((ulong)first * 512, (ulong)(first + 1 + random.Next(tables - first)) * 512);
    }
}
