using Hypervisor.GuestMmu.Addresses;
using Hypervisor.GuestMmu.Ept;
using Hypervisor.Notifier;

namespace Hypervisor.GuestMmu.Tests.Ept;

public sealed class TdpIteratorTests
{
    private const ulong OneGiB = 1UL << 18;
    private const ulong TwoMiB = 512;

    private EptPageTable _ept = null!;

    [SetUp]
    public void SetUp()
    {
        _ept = new EptPageTable();

        // 4 KiB leaves on both sides of a 1 GiB boundary (so across two PDPT entries and two PD tables),
        // a 2 MiB leaf, and a far leaf in a second 512 GiB root slot.
        foreach (var g in new ulong[] { OneGiB - 3, OneGiB - 1, OneGiB, OneGiB + 1, OneGiB + TwoMiB + 5, 1UL << 27 | 9 })
        {
            Assert.That(_ept.TryInstallLeaf(new Gfn(g), 1, Spte.Empty, Leaf(g)), Is.True);
        }

        Assert.That(_ept.TryInstallLeaf(new Gfn(OneGiB + (4 * TwoMiB)), 2, Spte.Empty, Spte.Leaf(new Pfn(0x800), true, true, true, true)), Is.True);
    }

    [TearDown]
    public void TearDown() => _ept.Dispose();

    [TestCase(0UL, 1UL << 36, 1)]
    [TestCase(OneGiB - 2, OneGiB + 2, 1)]
    [TestCase(OneGiB - 2, OneGiB + 2, 2)]
    [TestCase(OneGiB - TwoMiB - 7, OneGiB + (5 * TwoMiB) + 3, 1)]
    [TestCase(OneGiB + 1, OneGiB + 2, 1)]
    [TestCase(1UL, 1UL << 36, 3)]
    [TestCase(0UL, 1UL << 36, 4)]
    [TestCase((1UL << 27) + 9, (1UL << 27) + 10, 1)]
    public void PreOrder_MatchesAReferenceWalk(ulong start, ulong end, int minLevel)
    {
        var actual = new List<(ulong Gfn, int Level, ulong Value)>();
        var it = _ept.Iterate(new Gfn(start), new Gfn(end), minLevel);
        while (it.MoveNext())
        {
            actual.Add((it.Gfn.Value, it.Level, it.Entry));
        }

        var expected = new List<(ulong, int, ulong)>();
        ReferenceWalk(_ept.RootTable, 4, 0, start, end, minLevel, expected);
        Assert.That(actual, Is.EqualTo(expected));
        Assert.That(actual.Where(e => e.Level == minLevel).Select(e => e.Gfn), Is.Ordered.Ascending);
    }

    [Test]
    public void UnalignedRange_YieldsExactlyTheLeafSlotsInRange()
    {
        var start = OneGiB - 3;
        var end = OneGiB + 2;
        var leaves = new List<ulong>();
        var it = _ept.Iterate(new Gfn(start), new Gfn(end));
        while (it.MoveNext())
        {
            if (it.Level == 1)
            {
                leaves.Add(it.Gfn.Value);
            }
        }

        Assert.That(leaves, Is.EqualTo(new[] { OneGiB - 3, OneGiB - 2, OneGiB - 1, OneGiB, OneGiB + 1 }));
    }

    [Test]
    public void SkipChildren_DoesNotDescend()
    {
        var levels = new List<int>();
        var it = _ept.Iterate(new Gfn(0), new Gfn(1UL << 36));
        while (it.MoveNext())
        {
            levels.Add(it.Level);
            if (it.Level == 3)
            {
                it.SkipChildren();
            }
        }

        Assert.That(levels, Does.Not.Contain(2).And.Not.Contain(1));
        Assert.That(levels.Count(l => l == 4), Is.EqualTo(512));
    }

    [Test]
    public void LeafRun_CoversTheInRangePartOfTheTable_AndSkipContinuesAfterIt()
    {
        var start = OneGiB - 5;
        var end = OneGiB + 3;
        var runs = new List<(ulong Gfn, int Length)>();
        var levelOneVisits = 0;
        var it = _ept.Iterate(new Gfn(start), new Gfn(end));
        while (it.MoveNext())
        {
            if (it.Level == 1)
            {
                levelOneVisits++;
                runs.Add((it.Gfn.Value, it.LeafRun.Length));
                it.SkipLeafRun();
            }
        }

        Assert.That(runs, Is.EqualTo(new[] { (OneGiB - 5, 5), (OneGiB, 3) }));
        Assert.That(levelOneVisits, Is.EqualTo(2), "one visit per table");

        var outside = _ept.Iterate(new Gfn(1UL << 30), new Gfn((1UL << 30) + 1));
        Assert.That(outside.MoveNext(), Is.True);
        Assert.That(outside.Level, Is.EqualTo(4));
        string? message = null;
        try
        {
            _ = outside.LeafRun.Length;
        }
        catch (InvalidOperationException ex)
        {
            message = ex.Message;
        }

        Assert.That(message, Does.Contain("level 1 only"));
    }

    [Test]
    public void LeafRun_SpanWritesReachTheTable()
    {
        var it = _ept.Iterate(new Gfn(OneGiB), new Gfn(OneGiB + 2));
        while (it.MoveNext() && it.Level != 1)
        {
        }

        it.LeafRun[1] = 0;
        Assert.That(_ept.Read(new Gfn(OneGiB + 1)), Is.EqualTo(Spte.Empty));
    }

    [Test]
    public void Restart_AfterAChange_ReWalksFromTheRootToNextGfn()
    {
        var seen = new List<(ulong Gfn, int Level)>();
        var restarted = false;
        var it = _ept.Iterate(new Gfn(OneGiB - 3), new Gfn(OneGiB + TwoMiB + 6));
        while (it.MoveNext())
        {
            seen.Add((it.Gfn.Value, it.Level));
            if (!restarted && it.Level == 1 && it.Gfn.Value == OneGiB)
            {
                // "Drop the lock": meanwhile a new table appears later in the range; then resume.
                restarted = true;
                Assert.That(_ept.TryInstallLeaf(new Gfn(OneGiB + TwoMiB + 3), 1, Spte.Empty, Leaf(1)), Is.True);
                Assert.That(it.NextGfn, Is.EqualTo(new Gfn(OneGiB)));
                it.Restart();
            }
        }

        var afterRestart = seen.SkipWhile(s => s != (OneGiB, 1)).Skip(1).ToList();
        Assert.That(afterRestart.Take(4), Is.EqualTo(new[] { (0UL, 4), (OneGiB, 3), (OneGiB, 2), (OneGiB, 1) }),
            "the path to NextGfn is walked again from the root");
        Assert.That(afterRestart, Does.Contain((OneGiB + TwoMiB + 3, 1)), "the walk after the restart sees the new leaf");
        Assert.That(afterRestart.Where(s => s.Level == 1).Select(s => s.Gfn), Is.Ordered.Ascending.And.Unique);
    }

    [Test]
    public void Restart_AtTheEnd_EndsTheWalk()
    {
        const ulong Far = (5UL << 27) | 5;
        var it = _ept.Iterate(new Gfn(Far), new Gfn(Far + 1));
        Assert.That(it.MoveNext(), Is.True);
        while (it.MoveNext())
        {
        }

        it.Restart();
        Assert.That(it.MoveNext(), Is.True, "restart re-yields the last position");
        var count = 1;
        while (it.MoveNext())
        {
            count++;
        }

        Assert.That(count, Is.EqualTo(1), "the gfn sits under an empty root entry: one entry in range");
    }

    [Test]
    public void Restart_BeforeTheFirstStep_ChangesNothing()
    {
        var it = _ept.Iterate(new Gfn(OneGiB), new Gfn(OneGiB + 1));
        it.Restart();
        Assert.That(it.MoveNext(), Is.True);
        Assert.That((it.Gfn.Value, it.Level), Is.EqualTo((0UL, 4)));
        var last = (0UL, 0);
        while (it.MoveNext())
        {
            last = (it.Gfn.Value, it.Level);
        }

        Assert.That(last, Is.EqualTo((OneGiB, 1)));
    }

    [TestCase(OneGiB - 3)]
    [TestCase(OneGiB - 2)]
    [TestCase(OneGiB + 1)]
    [TestCase(OneGiB + TwoMiB + 5)]
    [TestCase(OneGiB + (4 * TwoMiB) + 17)]
    [TestCase((1UL << 27) | 9)]
    [TestCase((5UL << 27) | 5)]
    [TestCase((1UL << 36) - 1)]
    public void PointLookups_AreTheRangeWalkOverOneGfn(ulong gfn)
    {
        // The range walk over [gfn, gfn + 1) yields gfn's path, root first; the point lookups stop where it stops.
        var path = new List<(int Level, ulong Value)>();
        var it = _ept.Iterate(new Gfn(gfn), new Gfn(gfn + 1));
        while (it.MoveNext())
        {
            path.Add((it.Level, it.Entry));
        }

        Assert.That(path.Select(p => p.Level), Is.EqualTo(Enumerable.Range(path[^1].Level, 5 - path[^1].Level).Reverse()), "one entry per level");
        var spte = _ept.Read(new Gfn(gfn), out var level);
        Assert.That((level, spte.Value), Is.EqualTo(path[^1]), "Read stops on the deepest entry of the path");
        for (var l = 1; l <= 4; l++)
        {
            var atLevel = path.Where(p => p.Level == l).Select(p => p.Value).DefaultIfEmpty(0UL).Single();
            Assert.That(_ept.ReadAt(new Gfn(gfn), l).Value, Is.EqualTo(atLevel), $"ReadAt level {l}: the path's entry there, Empty below its end");
        }
    }

    [Test]
    public void BadArguments_Throw()
    {
        Assert.Throws<InvalidRangeException>(() => _ept.Iterate(new Gfn(5), new Gfn(5)));
        Assert.Throws<InvalidRangeException>(() => _ept.Iterate(new Gfn(5), new Gfn((1UL << 36) + 1)));
        Assert.Throws<ArgumentOutOfRangeException>(() => _ept.Iterate(new Gfn(0), new Gfn(5), 5));
        Assert.Throws<InvalidOperationException>(() =>
        {
            var it = _ept.Iterate(new Gfn(0), new Gfn(5));
            _ = it.Entry;
        });
    }

    private static Spte Leaf(ulong pfn) => Spte.Leaf(new Pfn(pfn), writable: true, executable: false, large: false, accessed: true);

    private void ReferenceWalk(uint table, int level, ulong baseGfn, ulong start, ulong end, int minLevel, List<(ulong, int, ulong)> output)
    {
        var size = 1UL << (9 * (level - 1));
        for (var slot = 0; slot < 512; slot++)
        {
            var gfn = baseGfn + ((ulong)slot * size);
            if (gfn + size <= start || gfn >= end)
            {
                continue;
            }

            var entry = new Spte(_ept.Arena.Table(table)[slot]);
            output.Add((gfn, level, entry.Value));
            if (level > minLevel && entry.IsPresent && !entry.IsLeaf(level))
            {
                ReferenceWalk(entry.TableIndex, level - 1, gfn, start, end, minLevel, output);
            }
        }
    }
}
