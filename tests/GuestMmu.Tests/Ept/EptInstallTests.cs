using Hypervisor.GuestMmu.Addresses;
using Hypervisor.GuestMmu.Ept;
using Hypervisor.Notifier;

namespace Hypervisor.GuestMmu.Tests.Ept;

public sealed class EptInstallTests
{
    private static Spte Leaf(ulong pfn, bool writable = true) => Spte.Leaf(new Pfn(pfn), writable, executable: true, large: false, accessed: true);

    private static Spte Large(ulong pfn) => Spte.Leaf(new Pfn(pfn), writable: true, executable: true, large: true, accessed: true);

    [Test]
    public void Install4K_CreatesThreeTables_AndReadFindsTheLeafAtLevelOne()
    {
        using var ept = new EptPageTable();
        var gfn = new Gfn(0x12_3456_789);
        Assert.That(ept.TryInstallLeaf(gfn, 1, Spte.Empty, Leaf(0x99)), Is.True);
        Assert.That(ept.Read(gfn, out var level), Is.EqualTo(Leaf(0x99)));
        Assert.That(level, Is.EqualTo(1));
        Assert.That(ept.Tables, Is.EqualTo(4), "root + PDPT + PD + PT");
        Assert.That(ept.Arena.TablesInUse, Is.EqualTo(4));
        Assert.That(ept.PresentLeaves, Is.EqualTo(1));
        Assert.That(ept.Read(gfn + 1, out level), Is.EqualTo(Spte.Empty));
        Assert.That(level, Is.EqualTo(1));
        Assert.That(ept.Read(new Gfn(0), out level), Is.EqualTo(Spte.Empty));
        Assert.That(level, Is.EqualTo(4), "the walk stops at the empty root entry");
    }

    [Test]
    public void Install_WrongExpectedOld_FailsAndLeavesTheEntry()
    {
        using var ept = new EptPageTable();
        var gfn = new Gfn(7);
        Assert.That(ept.Install(gfn, 1, Spte.Empty, Leaf(1)), Is.EqualTo(InstallResult.Installed));
        Assert.That(ept.Install(gfn, 1, Spte.Empty, Leaf(1)), Is.EqualTo(InstallResult.Changed));
        Assert.That(ept.Read(gfn), Is.EqualTo(Leaf(1)));
        Assert.That(ept.GetStats().InstallRaces, Is.EqualTo(1));
    }

    [Test]
    public void Install_SamePfnUpgrade_AndZapByCas_AreAllowed()
    {
        using var ept = new EptPageTable();
        var gfn = new Gfn(7);
        var readOnly = Leaf(5, writable: false);
        Assert.That(ept.TryInstallLeaf(gfn, 1, Spte.Empty, readOnly), Is.True);
        Assert.That(ept.TryInstallLeaf(gfn, 1, readOnly, Leaf(5)), Is.True, "write upgrade of the same frame");
        Assert.That(ept.PresentLeaves, Is.EqualTo(1));
        Assert.That(ept.TryInstallLeaf(gfn, 1, Leaf(5), Spte.Empty), Is.True, "a single-entry zap by compare-and-swap");
        Assert.That(ept.PresentLeaves, Is.Zero);
        Assert.That(ept.TryInstallLeaf(gfn, 1, Spte.Empty, Leaf(6)), Is.True, "after the zap a new frame may be installed");
    }

    [Test]
    public void Install_PresentLeafOverPresentLeafOfAnotherPfn_ThrowsNamingTheGfn()
    {
        using var ept = new EptPageTable();
        var gfn = new Gfn(0xabc);
        ept.TryInstallLeaf(gfn, 1, Spte.Empty, Leaf(1));
        var ex = Assert.Throws<InvalidOperationException>(() => ept.TryInstallLeaf(gfn, 1, Leaf(1), Leaf(2)));
        Assert.That(ex!.Message, Does.Contain("gfn:0xabc").And.Contain("different frame").And.Contain("zapped"));
        Assert.That(ept.Read(gfn), Is.EqualTo(Leaf(1)), "nothing changed");
    }

    [Test]
    public void Install_BadArguments_ThrowSpecificExceptions()
    {
        using var ept = new EptPageTable();
        var beyond = Assert.Throws<ArgumentOutOfRangeException>(() => ept.TryInstallLeaf(new Gfn(1UL << 36), 1, Spte.Empty, Leaf(1)));
        Assert.That(beyond!.Message, Does.Contain("gfn:0x1000000000").And.Contain("48-bit"));
        Assert.Throws<ArgumentOutOfRangeException>(() => ept.TryInstallLeaf(new Gfn(0), 4, Spte.Empty, Leaf(1)));
        Assert.Throws<ArgumentOutOfRangeException>(() => ept.TryInstallLeaf(new Gfn(0), 0, Spte.Empty, Leaf(1)));

        var noLargeBit = Assert.Throws<ArgumentException>(() => ept.TryInstallLeaf(new Gfn(0), 2, Spte.Empty, Leaf(512)));
        Assert.That(noLargeBit!.Message, Does.Contain("large-page bit at level 2"));
        var largeAt1 = Assert.Throws<ArgumentException>(() => ept.TryInstallLeaf(new Gfn(0), 1, Spte.Empty, Large(512)));
        Assert.That(largeAt1!.Message, Does.Contain("level 1"));
        var unaligned = Assert.Throws<ArgumentException>(() => ept.TryInstallLeaf(new Gfn(0), 2, Spte.Empty, Large(513)));
        Assert.That(unaligned!.Message, Does.Contain("multiple of 512"));
        var wWithoutMmuWritable = Assert.Throws<ArgumentException>(
            () => ept.TryInstallLeaf(new Gfn(0), 1, Spte.Empty, new Spte(Leaf(1, writable: false).Value | Spte.WritableBit)));
        Assert.That(wWithoutMmuWritable!.Message, Does.Contain("MMU-writable"));
        var mwWithoutHost = Assert.Throws<ArgumentException>(
            () => ept.TryInstallLeaf(new Gfn(0), 1, Spte.Empty, new Spte(Leaf(1).Value & ~Spte.HostWritableBit)));
        Assert.That(mwWithoutHost!.Message, Does.Contain("host-writable"));
        Assert.Throws<ArgumentException>(() => ept.TryInstallLeaf(new Gfn(0), 1, Spte.Empty, Spte.Frozen));
        Assert.That(ept.Tables, Is.EqualTo(1), "rejected installs create no tables");
    }

    [Test]
    public void LargeLeaf_InstallsAtLevelTwo_AndCoversItsWholeRange()
    {
        using var ept = new EptPageTable();
        var gfn = new Gfn(0x40000 + 17);
        Assert.That(ept.TryInstallLeaf(gfn, 2, Spte.Empty, Large(0x1000)), Is.True);
        var read = ept.Read(new Gfn(0x40000 + 511), out var level);
        Assert.That(read, Is.EqualTo(Large(0x1000)));
        Assert.That(level, Is.EqualTo(2));
        Assert.That(ept.Tables, Is.EqualTo(3), "no level-1 table under a 2 MiB leaf");

        var covered = ept.Install(new Gfn(0x40000 + 3), 1, Spte.Empty, Leaf(5));
        Assert.That(covered, Is.EqualTo(InstallResult.CoveredByLargeLeaf));
        Assert.That(ept.Tables, Is.EqualTo(3));
    }

    [Test]
    public void LargeLeaf_ReplacesAnEmptyTable_WhichIsRetiredThenReclaimed()
    {
        using var ept = new EptPageTable();
        var gfn = new Gfn(0x200);
        ept.TryInstallLeaf(gfn, 1, Spte.Empty, Leaf(1));
        var sink = new RecordingSink();
        ept.ZapLeaves(gfn, gfn + 1, ref sink);
        Assert.That(ept.Tables, Is.EqualTo(4), "a leaf zap leaves the table in place");

        var link = ept.ReadAt(gfn, 2);
        Assert.That(link.IsPresent && !link.IsLargePage, Is.True, "level 2 holds a table link");
        Assert.That(ept.Install(gfn, 2, Spte.Empty, Large(0x400)), Is.EqualTo(InstallResult.Changed), "the link is not Empty");
        Assert.That(ept.Install(gfn, 2, link, Large(0x400)), Is.EqualTo(InstallResult.Installed));
        Assert.That(ept.Read(gfn, out var level), Is.EqualTo(Large(0x400)));
        Assert.That(level, Is.EqualTo(2));
        Assert.That(ept.Tables, Is.EqualTo(3));
        Assert.That(ept.GetStats().RetiredTables, Is.EqualTo(1));
        Assert.That(ept.Arena.Table(link.TableIndex).ToArray(), Is.All.EqualTo(Spte.FrozenValue), "the retired table stays frozen");
        Assert.That(ept.Arena.TablesInUse, Is.EqualTo(4), "retired tables are not yet back in the arena");

        Assert.That(ept.ReclaimRetiredTables(), Is.EqualTo(1));
        Assert.That(ept.Arena.TablesInUse, Is.EqualTo(3));
        Assert.That(ept.PresentLeaves, Is.EqualTo(1));
    }

    [Test]
    public void LargeLeaf_OverAPopulatedTable_ReportsTablePopulatedAndRestoresEverything()
    {
        using var ept = new EptPageTable();
        ept.TryInstallLeaf(new Gfn(0x3ff), 1, Spte.Empty, Leaf(1));
        var link = ept.ReadAt(new Gfn(0x200), 2);
        Assert.That(ept.Install(new Gfn(0x200), 2, link, Large(0x400)), Is.EqualTo(InstallResult.TablePopulated));
        Assert.That(ept.ReadAt(new Gfn(0x200), 2), Is.EqualTo(link));
        Assert.That(ept.Read(new Gfn(0x3ff)), Is.EqualTo(Leaf(1)));
        Assert.That(ept.Arena.Table(link.TableIndex)[..511].ToArray(), Is.All.Zero, "frozen entries were thawed");
        Assert.That(ept.TryInstallLeaf(new Gfn(0x200), 1, Spte.Empty, Leaf(2)), Is.True, "the table is usable again");
    }

    [Test]
    public void Install_Over_A_FrozenEntry_ReportsChanged()
    {
        using var ept = new EptPageTable();
        ept.TryInstallLeaf(new Gfn(0), 1, Spte.Empty, Leaf(1));
        var link = ept.ReadAt(new Gfn(0), 2);
        ept.Arena.Table(link.TableIndex)[5] = Spte.FrozenValue;
        Assert.That(ept.Install(new Gfn(5), 1, Spte.Empty, Leaf(2)), Is.EqualTo(InstallResult.Changed));
        Assert.That(ept.Read(new Gfn(5)), Is.EqualTo(Spte.Frozen));
        Assert.That(ept.Install(new Gfn(5), 1, Spte.Frozen, Leaf(2)), Is.EqualTo(InstallResult.Changed), "nobody compare-and-swaps away from a frozen entry");
        Assert.That(ept.Read(new Gfn(5)), Is.EqualTo(Spte.Frozen));
        var pd = ept.ReadAt(new Gfn(0), 3).TableIndex;
        ept.Arena.Table(pd)[1] = Spte.FrozenValue;
        Assert.That(ept.Install(new Gfn(512 + 3), 1, Spte.Empty, Leaf(2)), Is.EqualTo(InstallResult.Changed), "a frozen link blocks the walk");
    }

    [Test]
    public void ParallelInstallers_OnTheSameGfns_ExactlyOneWinsEach_AndNoTableLeaks()
    {
        using var ept = new EptPageTable();
        const int Threads = 4;

        // Gfns straddling a 2 MiB and a 1 GiB boundary and a far 512 GiB slot.
        var gfns = Enumerable.Range(0, 64).Select(i => (ulong)(0x3FFE0 + i))
            .Concat(Enumerable.Range(0, 64).Select(i => (ulong)(0x8000000 + (i * 4097))))
            .Select(g => new Gfn(g)).ToArray();
        var winners = new int[gfns.Length];
        using var start = new Barrier(Threads);
        var threads = Enumerable.Range(0, Threads).Select(t => new Thread(() =>
        {
            start.SignalAndWait();
            for (var i = 0; i < gfns.Length; i++)
            {
                if (ept.TryInstallLeaf(gfns[i], 1, Spte.Empty, Leaf((ulong)(1000 * (t + 1)) + (ulong)i)))
                {
                    Interlocked.Increment(ref winners[i]);
                }
            }
        })).ToList();
        threads.ForEach(t => t.Start());
        threads.ForEach(t => t.Join());

        Assert.That(winners, Is.All.EqualTo(1));
        Assert.That(ept.PresentLeaves, Is.EqualTo(gfns.Length));
        Assert.That(ept.CountPresentLeaves(), Is.EqualTo(gfns.Length));

        var expectedTables = 1 + CountDistinct(gfns, 3) + CountDistinct(gfns, 2) + CountDistinct(gfns, 1);
        Assert.That(ept.Tables, Is.EqualTo(expectedTables));
        Assert.That(ept.Arena.TablesInUse, Is.EqualTo(expectedTables), "tables that lost the link race went back to the arena");
        var stats = ept.GetStats();
        Assert.That(stats.Installs, Is.EqualTo(gfns.Length));
        Assert.That(stats.InstallRaces, Is.EqualTo((Threads - 1) * gfns.Length));
    }

    [Test]
    public void LargeLeafReplacingATable_RacingWith4KInstalls_EitherWinsAndNothingIsLost()
    {
        var largeWins = 0;
        for (var round = 0; round < 100; round++)
        {
            using var ept = new EptPageTable();
            var region = new Gfn(512);
            ept.TryInstallLeaf(region, 1, Spte.Empty, Leaf(1));
            Assert.That(ept.TryInstallLeaf(region, 1, Leaf(1), Spte.Empty), Is.True, "an empty table stays behind");
            var small = 0;
            InstallResult large = default;
            using var start = new Barrier(3);
            var replacer = new Thread(() =>
            {
                start.SignalAndWait();
                large = ept.Install(region, 2, ept.ReadAt(region, 2), Large(0x400));
            });
            var installers = Enumerable.Range(0, 2).Select(t => new Thread(() =>
            {
                start.SignalAndWait();
                for (var i = t; i < 512; i += 2)
                {
                    var result = ept.Install(region + (ulong)i, 1, Spte.Empty, Leaf(0x1000 + (ulong)i));
                    if (result == InstallResult.Installed)
                    {
                        Interlocked.Increment(ref small);
                    }
                    else if (result == InstallResult.CoveredByLargeLeaf)
                    {
                        break;
                    }
                }
            })).ToList();
            replacer.Start();
            installers.ForEach(t => t.Start());
            replacer.Join();
            installers.ForEach(t => t.Join());

            Assert.That(large, Is.AnyOf(InstallResult.Installed, InstallResult.TablePopulated, InstallResult.Changed));
            if (large == InstallResult.Installed)
            {
                largeWins++;
                Assert.That(small, Is.Zero, $"round {round}: no 4 KiB leaf may land in a table that a large leaf replaced");
                Assert.That(ept.Read(region + 100, out var level), Is.EqualTo(Large(0x400)));
                Assert.That(level, Is.EqualTo(2));
            }
            else
            {
                Assert.That(ept.CountPresentLeaves(region, region + 512), Is.EqualTo(small), $"round {round}");
            }

            Assert.That(ept.PresentLeaves, Is.EqualTo(ept.CountPresentLeaves()), $"round {round}");
            Assert.That(ept.Arena.TablesInUse, Is.EqualTo(ept.Tables + ept.GetStats().RetiredTables), $"round {round}: no table leaked");
        }

        TestContext.Out.WriteLine($"large leaf won {largeWins} of 100 rounds");
    }

    [Test]
    public void TrySetAccessedDirty_SetsBitsOnlyOnTheObservedValue()
    {
        using var ept = new EptPageTable();
        var gfn = new Gfn(42);
        var clean = Spte.Leaf(new Pfn(9), writable: true, executable: false, large: false, accessed: false);
        ept.TryInstallLeaf(gfn, 1, Spte.Empty, clean);
        Assert.That(ept.TrySetAccessedDirty(gfn, clean, dirty: false), Is.True);
        Assert.That(ept.Read(gfn), Is.EqualTo(clean.WithAccessed(false)));
        Assert.That(ept.TrySetAccessedDirty(gfn, clean, dirty: true), Is.False, "the entry changed since it was observed");
        Assert.That(ept.TrySetAccessedDirty(gfn, clean.WithAccessed(false), dirty: true), Is.True);
        Assert.That(ept.Read(gfn).IsDirty, Is.True);
        Assert.That(ept.TrySetAccessedDirty(new Gfn(43), clean, dirty: false), Is.False, "nothing mapped there");
        Assert.Throws<ArgumentException>(() => ept.TrySetAccessedDirty(gfn, Spte.Empty, false));
    }

    private static int CountDistinct(Gfn[] gfns, int level) =>
        gfns.Select(g => g.Value >> (9 * level)).Distinct().Count();
}
