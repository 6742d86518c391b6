using Hypervisor.HostMm.Frames;
using Hypervisor.HostMm.Migration;
using Hypervisor.HostMm.PageTables;
using Hypervisor.Notifier;
using static Hypervisor.HostMm.Tests.Thp.ThpHosts;

namespace Hypervisor.HostMm.Tests.Thp;

/// <summary>
/// Huge-page migration: an exclusive huge page moves whole (start (Clear) → leaf cleared and flushed → end → 2 MiB
/// copied → new leaf with no notifier → old frames freed); a shared one, or one the target node has no whole block
/// for, is split and moves 4 KiB at a time.
/// </summary>
public class ThpMigrationTests
{
    private const int Frames = 512;

    private static Host TwoNodes() => new(new HostOptions
    {
        Memory = new HostMemoryOptions { TotalBytes = 64UL << 20, NodeCount = 2, AuditFreedFrames = true },
        TransparentHugePages = ThpMode.Always,
    });

    [Test]
    public void An_exclusive_huge_page_moves_whole_in_order_and_stays_huge()
    {
        using var host = TwoNodes();
        var mm = host.CreateMm(0);
        var start = MapAligned(mm, 2);
        Stamp(mm, start, 2 * Frames, seed: 1);
        var recorder = Processes.TestHosts.Record(mm);

        var summary = host.Migration.MigratePages(mm, 0, 1);

        Assert.That(summary.Migrated, Is.EqualTo(2 * Frames));
        Assert.That(summary.HugePages, Is.EqualTo(2));
        Assert.That(Processes.TestHosts.Timeline(recorder, mm), Is.EqualTo("start:Clear pte flush end pte free start:Clear pte flush end pte free"));
        for (var i = 0UL; i < 2; i++)
        {
            var leaf = mm.PageTable.ReadPmd(start + (i * HugeBytes));
            Assert.That(HostPageTable.IsHugeLeaf(leaf.Value) && host.Memory.NodeOf(leaf.Pfn) == 1, Is.True, $"huge page {i} is one leaf on node 1");
        }

        Assert.That(Unstamped(mm, start, 2 * Frames, seed: 1), Is.Empty);
        Assert.That(host.Migration.Stats.ThpMigrationSuccess, Is.EqualTo(2));
        Assert.That(host.Migration.Stats.PgmigrateSuccess, Is.EqualTo(2 * Frames));
        Assert.That(mm.Stats.RssPages, Is.EqualTo(2 * Frames));
        AssertConsistent(host);
        mm.Exit();
        Assert.That(host.Memory.GetNode(0).FreeFrames + host.Memory.GetNode(1).FreeFrames, Is.EqualTo(host.Memory.FreeFrames));
        AssertConsistent(host);
    }

    [Test]
    public void A_huge_page_of_a_limited_cgroup_leaves_its_own_lruvec_when_it_moves()
    {
        // Regression (found by hv demo stress): the old frames' cgroup was cleared before their release took them off
        // the LRU, so the release fixed the root's lruvec counts: the cgroup's list kept counting 512 frames it no longer
        // held and the root's went to -512.
        using var host = new Host(new HostOptions
        {
            Memory = new HostMemoryOptions { TotalBytes = 64UL << 20, NodeCount = 2, AuditFreedFrames = true },
            TransparentHugePages = ThpMode.Always,
        });
        var mm = host.CreateMm(0, host.Reclaim.CreateCgroup("vm", 4096));
        var start = MapAligned(mm, 1);
        Stamp(mm, start, Frames, seed: 5);
        Assert.That(mm.PageTable.IsHugeMapped(start), Is.True);

        var summary = host.Migration.MigrateRange(mm, start, start + HugeBytes, toNode: 1);

        Assert.That(summary.HugePages, Is.EqualTo(1));
        Assert.That(HostMmAuditor.Check(host), Is.Empty);
        Assert.That(Unstamped(mm, start, Frames, seed: 5), Is.Empty);
        mm.Exit();
        Assert.That(HostMmAuditor.Check(host), Is.Empty);
    }

    [Test]
    public void A_huge_page_migrating_whole_is_isolated_from_its_lru_and_frozen_before_its_leaf_is_cleared()
    {
        // migrate_pages isolates a folio before migrating it: while the copy is prepared reclaim cannot take a frame off
        // its list (it is on none), and no reference can be taken through a cached translation (the refcount is frozen).
        using var host = LimitedTwoNodes(out var mm);
        var start = MapAligned(mm, 1);
        Stamp(mm, start, Frames, seed: 8);
        var seen = new List<string>();
        host.Migration.AfterHugeIsolate = first =>
        {
            for (var i = 0UL; i < Frames; i += 97)
            {
                var frame = host.Memory.Frame(first + i);
                if (frame.Has(FrameFlags.Lru) || !frame.Has(FrameFlags.Isolated) || !frame.Has(FrameFlags.Locked) || frame.RefCount != 0)
                {
                    seen.Add($"frame {i}: flags {frame.Flags}, refcount {frame.RefCount}");
                }

                if (host.Memory.TryGet(first + i) || host.Reclaim.TryIsolate(first + i))
                {
                    seen.Add($"frame {i}: a reference or an isolation was taken during the migration");
                }
            }

            Assert.That(mm.PageTable.IsHugeMapped(start), Is.True, "still mapped: the leaf is cleared after the isolation");
        };

        var summary = host.Migration.MigrateRange(mm, start, start + HugeBytes, toNode: 1);

        Assert.That(seen, Is.Empty);
        Assert.That(summary.HugePages, Is.EqualTo(1));
        Assert.That(host.Memory.NodeOf(mm.PageTable.ReadPmd(start).Pfn), Is.EqualTo(1));
        Assert.That(Unstamped(mm, start, Frames, seed: 8), Is.Empty);
        AssertConsistent(host);
    }

    [Test]
    public void A_huge_page_with_a_reference_held_elsewhere_stays_on_its_lists_and_moves_once_it_is_dropped()
    {
        // A device's speculative reference through a cached translation (the DMA engine's registration cache takes them
        // without the mmap lock): the freeze fails, the attempt is -EAGAIN, and every frame goes back on its cgroup's list.
        using var host = LimitedTwoNodes(out var mm);
        var start = MapAligned(mm, 1);
        Stamp(mm, start, Frames, seed: 9);
        var old = mm.PageTable.ReadPmd(start).Pfn;
        Assert.That(host.Memory.TryGet(old + 300), Is.True);

        var refused = host.Migration.MigrateRange(mm, start, start + HugeBytes, toNode: 1);

        Assert.Multiple(() =>
        {
            Assert.That(refused.HugePages, Is.Zero);
            Assert.That(refused.Referenced, Is.EqualTo(Frames));
            Assert.That(mm.PageTable.ReadPmd(start).Pfn, Is.EqualTo(old), "the huge page stayed where it was");
            Assert.That(host.Memory.Frame(old + 300).RefCount, Is.EqualTo(2), "the mapping's reference and the one held");
            Assert.That(Enumerable.Range(0, Frames).Count(i => host.Memory.Frame(old + (ulong)i).Has(FrameFlags.Lru)), Is.EqualTo(Frames), "every frame back on a list");
            Assert.That(Enumerable.Range(0, Frames).Count(i => (host.Memory.Frame(old + (ulong)i).Flags & (FrameFlags.Isolated | FrameFlags.Locked)) != 0), Is.Zero, "none left isolated or locked");
        });

        host.Memory.Put(old + 300);
        AssertConsistent(host);
        var moved = host.Migration.MigrateRange(mm, start, start + HugeBytes, toNode: 1);

        Assert.That(moved.HugePages, Is.EqualTo(1));
        Assert.That(Unstamped(mm, start, Frames, seed: 9), Is.Empty);
        AssertConsistent(host);
        mm.Exit();
        AssertConsistent(host);
    }

    private static Host LimitedTwoNodes(out Mm mm)
    {
        var host = new Host(new HostOptions
        {
            Memory = new HostMemoryOptions { TotalBytes = 64UL << 20, NodeCount = 2, AuditFreedFrames = true },
            TransparentHugePages = ThpMode.Always,
        });
        mm = host.CreateMm(0, host.Reclaim.CreateCgroup("vm", 4096));
        return host;
    }

    [Test]
    public void Move_pages_on_one_subpage_moves_the_whole_huge_page()
    {
        using var host = TwoNodes();
        var mm = host.CreateMm(0);
        var start = MapAligned(mm, 1);
        Stamp(mm, start, Frames, seed: 2);

        var status = host.Migration.MovePages(mm, [start + (17 * Page), start + (18 * Page)], [1, 1]);

        Assert.That(status, Is.All.EqualTo(new PageMoveStatus(1, MigrationFailure.None)));
        Assert.That(host.Migration.Stats.ThpMigrationSuccess, Is.EqualTo(1), "the second page was already there");
        Assert.That(mm.PageTable.IsHugeMapped(start), Is.True);
        Assert.That(Unstamped(mm, start, Frames, seed: 2), Is.Empty);
        AssertConsistent(host);
    }

    [Test]
    public void A_shared_huge_page_is_split_and_moves_4_kib_at_a_time_in_both_processes()
    {
        using var host = TwoNodes();
        var parent = host.CreateMm(0);
        var start = MapAligned(parent, 1);
        Stamp(parent, start, Frames, seed: 3);
        var child = parent.Fork();

        var summary = host.Migration.MigrateRange(parent, start, start + HugeBytes, toNode: 1, moveShared: true);

        Assert.That(host.Migration.Stats.ThpMigrationSplit, Is.EqualTo(1));
        Assert.That(summary.Migrated, Is.EqualTo(Frames));
        Assert.That(parent.PageTable.IsHugeMapped(start), Is.False);
        Assert.That(child.PageTable.Read(start + (5 * Page)).Pfn, Is.EqualTo(parent.PageTable.Read(start + (5 * Page)).Pfn), "the child follows each page");
        Assert.That(host.Memory.NodeOf(child.PageTable.Read(start).Pfn), Is.EqualTo(1));
        Assert.That(Unstamped(parent, start, Frames, seed: 3), Is.Empty);
        Assert.That(Unstamped(child, start, Frames, seed: 3), Is.Empty);
        AssertConsistent(host);
    }

    [Test]
    public void Without_a_whole_block_on_the_target_the_huge_page_splits_and_moves_at_4_kib()
    {
        using var host = TwoNodes();
        var held = new List<Pfn>();
        while (host.Memory.TryAllocate(1, AllocationFlags.ExactNode, out var pfn))
        {
            held.Add(pfn);
        }

        foreach (var pfn in held.Where(p => p.Value % 512 != 0))
        {
            host.Memory.Put(pfn);
        }

        var mm = host.CreateMm(0);
        var start = MapAligned(mm, 1);
        Stamp(mm, start, Frames, seed: 4);

        var summary = host.Migration.MigratePages(mm, 0, 1);

        Assert.That(summary.HugePages, Is.Zero);
        Assert.That(summary.Migrated, Is.EqualTo(Frames));
        Assert.That(host.Migration.Stats.ThpMigrationSplit, Is.EqualTo(1));
        Assert.That(Unstamped(mm, start, Frames, seed: 4), Is.Empty);
        foreach (var pfn in held.Where(p => p.Value % 512 == 0))
        {
            host.Memory.Put(pfn);
        }

        AssertConsistent(host);
    }
}
