using Hypervisor.Notifier;
using Hypervisor.HostMm.Frames;
using Hypervisor.HostMm.Migration;
using Hypervisor.HostMm.Vmas;
using static Hypervisor.HostMm.Tests.Migration.MigrationHosts;

namespace Hypervisor.HostMm.Tests.Migration;

/// <summary>Bad input and pages that cannot move: a clear error or a per-page status, never a lost or corrupted page.</summary>
public class MigrationFailureTests
{
    [Test]
    public void A_node_the_host_lacks_is_refused_before_anything_moves()
    {
        using var host = MigrationHosts.Create();
        var (mm, start) = Populated(host, 2, seed: 1);

        var error = Assert.Throws<NumaNodeOutOfRangeException>(() => host.Migration.MovePages(mm, Pages(start, 2), [1, 2]))!;

        Assert.That(error.Node, Is.EqualTo(2));
        Assert.That(error.Message, Does.Contain("node 2 does not exist").And.Contain("nodes 0 to 1"));
        Assert.That(error.Rule, Is.EqualTo(HostMmRule.NodeOutOfRange));
        Assert.That(NodeOfPage(mm, start), Is.Zero, "the valid first entry did not move either");
        Assert.Throws<NumaNodeOutOfRangeException>(() => host.Migration.MigratePages(mm, 0, -1));
        Assert.Throws<NumaNodeOutOfRangeException>(() => mm.Mbind(start, 2 * Page, NumaPolicy.Bind(0, 3)));
        Assert.That(mm.Vmas.Single().Policy, Is.EqualTo(NumaPolicy.Local), "a refused mbind changes no policy");
        Assert.Throws<ArgumentException>(() => host.Migration.MovePages(mm, Pages(start, 2), [1]));
        Assert.Throws<ArgumentException>(() => NumaPolicy.Interleave());
        Assert.Throws<ArgumentException>(() => NumaPolicy.Bind(64));
        Assert.Throws<UnmappedRangeException>(() => mm.Mbind(start, 4 * Page, NumaPolicy.Bind(1)));
        Assert.That(CorruptPages(mm, start, 2, seed: 1), Is.Empty);
    }

    [Test]
    public void Unmapped_untouched_zero_page_and_swapped_addresses_report_their_status()
    {
        using var host = Reclaim.SwapHosts.Create();
        var mm = host.CreateMm(0);
        var start = mm.Mmap(4 * Page, Protection.Read | Protection.Write);
        mm.Read(start + Page, new byte[8]); // the zero page
        WritePattern(mm, start + (2 * Page), 2, seed: 2);
        mm.Madvise(start + (3 * Page), Page, Advice.PageOut);

        var status = host.Migration.MovePages(mm, [start, start + Page, start + (2 * Page), start + (3 * Page), new Hva(0x1000)], [1, 1, 1, 1, 1]);

        Assert.That(status.Select(s => s.Failure), Is.EqualTo(new[]
        {
            MigrationFailure.NotPresent, MigrationFailure.NotPresent, MigrationFailure.None, MigrationFailure.NotPresent, MigrationFailure.NotMapped,
        }));
        Assert.That(status[2].Node, Is.EqualTo(1));
        Assert.That(host.Migration.Stats.PgmigrateFail, Is.Zero, "absent pages are statuses, not failures");
        Assert.That(CorruptPages(mm, start + (2 * Page), 2, seed: 2), Is.Empty);
    }

    [Test]
    public void A_full_target_node_fails_the_page_and_leaves_it_where_it_was()
    {
        using var host = MigrationHosts.Create(megabytes: 64);
        var (mm, start) = Populated(host, 4, seed: 3);
        var hogs = new List<Pfn>();
        while (host.Memory.TryAllocate(1, AllocationFlags.ExactNode, out var pfn))
        {
            hogs.Add(pfn);
        }

        var summary = host.Migration.MigratePages(mm, 0, 1);

        Assert.That(summary.Migrated, Is.Zero);
        Assert.That(summary.TargetNodeFull, Is.EqualTo(4));
        Assert.That(host.Migration.Stats.FailTargetNodeFull, Is.EqualTo(4));
        Assert.That(Enumerable.Range(0, 4).All(i => NodeOfPage(mm, start + ((ulong)i * Page)) == 0), Is.True);
        Assert.That(CorruptPages(mm, start, 4, seed: 3), Is.Empty);

        host.Memory.Put(hogs[0]);
        Assert.That(host.Migration.MigratePages(mm, 0, 1).Migrated, Is.EqualTo(1), "one free frame, one page moved");
        foreach (var pfn in hogs.Skip(1))
        {
            host.Memory.Put(pfn);
        }

        AssertConsistent(host);
    }

    [Test]
    public void A_page_a_get_user_pages_reference_holds_fails_as_referenced_after_every_pass_then_moves_once_released()
    {
        using var host = MigrationHosts.Create();
        var (mm, start) = Populated(host, 1, seed: 4);
        var held = mm.GetUserPages(start, write: true);

        var status = host.Migration.MovePages(mm, [start], [1]);

        Assert.That(status[0], Is.EqualTo(new PageMoveStatus(0, MigrationFailure.Referenced)));
        Assert.That(mm.PageTable.Read(start).Pfn, Is.EqualTo(held.Pfn));
        Assert.That(host.Memory.Frame(held.Pfn).Has(FrameFlags.Lru), Is.True, "the page went back on its LRU");
        Assert.That(host.Migration.Stats.FailReferenced, Is.EqualTo(1));
        mm.ReleasePage(held.Pfn);
        AssertConsistent(host);

        Assert.That(host.Migration.MovePages(mm, [start], [1])[0], Is.EqualTo(new PageMoveStatus(1, MigrationFailure.None)));
        Assert.That(CorruptPages(mm, start, 1, seed: 4), Is.Empty);
        AssertConsistent(host);
    }

    [Test]
    public void A_locked_page_is_busy_through_every_pass()
    {
        using var host = MigrationHosts.Create();
        var (mm, start) = Populated(host, 1, seed: 5);
        var pfn = mm.PageTable.Read(start).Pfn;
        host.Memory.SetFlags(pfn, FrameFlags.Locked);

        var status = host.Migration.MovePages(mm, [start], [1]);

        host.Memory.ClearFlags(pfn, FrameFlags.Locked);
        Assert.That(status[0].Failure, Is.EqualTo(MigrationFailure.Busy));
        Assert.That(host.Migration.Stats.Retries, Is.EqualTo(Migrator.MaxPasses - 1));
        AssertConsistent(host);
    }

    [Test]
    public void A_page_already_on_the_target_node_reports_success_and_moves_nothing()
    {
        using var host = MigrationHosts.Create();
        var (mm, start) = Populated(host, 1, seed: 6);
        var pfn = mm.PageTable.Read(start).Pfn;

        var status = host.Migration.MovePages(mm, [start], [0]);

        Assert.That(status[0], Is.EqualTo(new PageMoveStatus(0, MigrationFailure.None)));
        Assert.That(mm.PageTable.Read(start).Pfn, Is.EqualTo(pfn));
        Assert.That(host.Migration.Stats.PgmigrateSuccess, Is.Zero);
    }
}
