using Hypervisor.HostMm.Frames;
using Hypervisor.HostMm.Migration;
using Hypervisor.HostMm.Vmas;
using static Hypervisor.HostMm.Tests.Migration.MigrationHosts;

namespace Hypervisor.HostMm.Tests.Migration;

/// <summary>Pages keep their data and state across migration; the counters say what moved.</summary>
public class MigrationDataTests
{
    [Test]
    public void Migrate_pages_moves_every_page_to_the_other_node_and_back_with_the_data_unchanged()
    {
        using var host = MigrationHosts.Create();
        var (mm, start) = Populated(host, 64, seed: 1);
        var rss = mm.Stats.RssPages;
        Assert.That(Enumerable.Range(0, 64).All(i => NodeOfPage(mm, start + ((ulong)i * Page)) == 0), Is.True, "a process on node 0 faults its pages in there");

        var there = host.Migration.MigratePages(mm, fromNode: 0, toNode: 1);

        Assert.That(there.Migrated, Is.EqualTo(64));
        Assert.That(there.Failed, Is.Zero);
        Assert.That(Enumerable.Range(0, 64).All(i => NodeOfPage(mm, start + ((ulong)i * Page)) == 1), Is.True);
        Assert.That(CorruptPages(mm, start, 64, seed: 1), Is.Empty);
        Assert.That(mm.Stats.RssPages, Is.EqualTo(rss), "migration neither adds nor drops resident pages");
        AssertConsistent(host);

        var back = host.Migration.MigratePages(mm, fromNode: 1, toNode: 0);
        Assert.That(back.Migrated, Is.EqualTo(64));
        Assert.That(CorruptPages(mm, start, 64, seed: 1), Is.Empty);
        Assert.That(host.Migration.Stats.PgmigrateSuccess, Is.EqualTo(128));
        Assert.That(host.Migration.Stats.EntriesInstalled, Is.EqualTo(128));
        Assert.That(host.Migration.Stats.EntriesRemoved, Is.EqualTo(128));
        Assert.That(host.Migration.Stats.PgmigrateFail, Is.Zero);
        AssertConsistent(host);
        mm.Exit();
        Assert.That(host.Memory.GetNode(1).FreeFrames, Is.EqualTo(host.Memory.GetNode(1).FrameCount), "every frame of node 1 is free again: the old frames were freed, nothing leaked");
    }

    [Test]
    public void The_pte_keeps_writable_young_and_dirty_and_a_read_only_page_stays_read_only()
    {
        using var host = MigrationHosts.Create();
        var (mm, start) = Populated(host, 2, seed: 2);
        mm.Mprotect(start + Page, Page, Protection.Read);
        var before = new[] { mm.PageTable.Read(start), mm.PageTable.Read(start + Page) };

        var status = host.Migration.MovePages(mm, Pages(start, 2), [1, 1]);

        Assert.That(status.Select(s => s.Node), Is.EqualTo(new[] { 1, 1 }));
        for (var i = 0; i < 2; i++)
        {
            var after = mm.PageTable.Read(start + ((ulong)i * Page));
            Assert.That(after.Pfn, Is.Not.EqualTo(before[i].Pfn));
            Assert.That((after.IsWritable, after.IsAccessed, after.IsDirty), Is.EqualTo((before[i].IsWritable, before[i].IsAccessed, before[i].IsDirty)), $"page {i}");
        }

        Assert.That(() => mm.Write(start + Page, new byte[8]), Throws.InstanceOf<HostFaultException>(), "the read-only page did not become writable");
        mm.Write(start, new byte[8]);
        Assert.That(mm.Stats.CopyOnWriteFaults, Is.Zero, "the writable page was mapped writable: no fault was needed");
        AssertConsistent(host);
    }

    [Test]
    public void A_page_in_the_swap_cache_moves_with_its_cache_entry()
    {
        using var host = Reclaim.SwapHosts.Create();
        var mm = host.CreateMm(0);
        var start = mm.Mmap(4 * Page, Protection.Read | Protection.Write);
        WritePattern(mm, start, 4, seed: 3);
        mm.Madvise(start, 4 * Page, Advice.PageOut);
        Assert.That(CorruptPages(mm, start, 4, seed: 3), Is.Empty, "read back: the clean pages stay in the swap cache");
        var oldPfn = mm.PageTable.Read(start).Pfn;
        Assert.That(host.Memory.Frame(oldPfn).Has(FrameFlags.SwapCache), Is.True);
        var slot = host.Memory.Frame(oldPfn).SwapSlot;

        var moved = host.Migration.MigrateRange(mm, start, start + (4 * Page), toNode: 1);

        Assert.That(moved.Migrated, Is.EqualTo(4));
        var newPfn = mm.PageTable.Read(start).Pfn;
        Assert.That(host.Memory.Frame(newPfn).Has(FrameFlags.SwapCache), Is.True, "the new frame is the slot's cached page");
        Assert.That(host.Memory.Frame(newPfn).SwapSlot, Is.EqualTo(slot));
        Assert.That(host.Reclaim.Cache!.TryGetFrame(slot, out var cached) && cached == newPfn, Is.True);
        AssertConsistent(host);

        // Swapped out again from the new frame, then back: the data survived both trips.
        mm.Madvise(start, 4 * Page, Advice.PageOut);
        Assert.That(CorruptPages(mm, start, 4, seed: 3), Is.Empty);
        AssertConsistent(host);
    }

    [Test]
    public void The_cgroup_charge_moves_with_the_page_and_the_old_frame_is_not_uncharged_twice()
    {
        using var host = MigrationHosts.Create();
        var cgroup = host.Reclaim.CreateCgroup("vm", 1024);
        var mm = host.CreateMm(0, cgroup);
        var start = mm.Mmap(16 * Page, Protection.Read | Protection.Write);
        WritePattern(mm, start, 16, seed: 4);
        var usage = cgroup.UsagePages;

        host.Migration.MigratePages(mm, 0, 1);

        Assert.That(cgroup.UsagePages, Is.EqualTo(usage));
        mm.Exit();
        Assert.That(cgroup.UsagePages, Is.Zero);
    }

    [Test]
    public void Pages_shared_with_a_forked_child_move_only_when_shared_pages_are_asked_for_and_then_in_both()
    {
        using var host = MigrationHosts.Create();
        var (parent, start) = Populated(host, 4, seed: 5);
        var child = parent.Fork();

        var refused = host.Migration.MovePages(parent, Pages(start, 4), [1, 1, 1, 1]);
        Assert.That(refused.Select(s => s.Failure), Is.All.EqualTo(MigrationFailure.Shared));
        Assert.That(NodeOfPage(parent, start), Is.Zero);

        var moved = host.Migration.MovePages(parent, Pages(start, 4), [1, 1, 1, 1], moveShared: true);

        Assert.That(moved.Select(s => s.Node), Is.All.EqualTo(1));
        for (var i = 0; i < 4; i++)
        {
            var address = start + ((ulong)i * Page);
            Assert.That(child.PageTable.Read(address).Pfn, Is.EqualTo(parent.PageTable.Read(address).Pfn), "the child's mapping follows the page");
        }

        Assert.That(CorruptPages(parent, start, 4, seed: 5), Is.Empty);
        Assert.That(CorruptPages(child, start, 4, seed: 5), Is.Empty);
        AssertConsistent(host);
    }

    [Test]
    public void A_ksm_page_moves_with_its_stable_node_and_every_sharer_maps_the_new_frame()
    {
        using var host = MigrationHosts.Create();
        var a = host.CreateMm(0);
        var b = host.CreateMm(0);
        var startA = Ksm.KsmHosts.MapMergeable(a, 4, i => 100 + i);
        var startB = Ksm.KsmHosts.MapMergeable(b, 4, i => 100 + i);
        Ksm.KsmHosts.FullScans(host, 3);
        host.Ksm.Run = HostMm.Ksm.KsmRunMode.Stop;
        var kpfn = a.PageTable.Read(startA).Pfn;
        Assert.That(host.Memory.Frame(kpfn).Has(FrameFlags.Ksm) && b.PageTable.Read(startB).Pfn == kpfn, Is.True, "the pages merged");

        var refused = host.Migration.MovePages(a, [startA], [1]);
        Assert.That(refused[0].Failure, Is.EqualTo(MigrationFailure.Shared), "a KSM page is shared: it moves only with moveShared");
        var moved = host.Migration.MovePages(a, [startA], [1], moveShared: true);

        Assert.That(moved[0].Succeeded, Is.True);
        var newPfn = a.PageTable.Read(startA).Pfn;
        Assert.That(host.Memory.NodeOf(newPfn), Is.EqualTo(1));
        Assert.That(b.PageTable.Read(startB).Pfn, Is.EqualTo(newPfn), "the other sharer maps the new KSM page too");
        Assert.That(host.Memory.Frame(newPfn).Has(FrameFlags.Ksm), Is.True);
        Assert.That(a.PageTable.Read(startA).IsWritable, Is.False, "still read-only: a write breaks it");
        Assert.That(HostMmAuditor.CheckKsmSettled(host), Is.Empty);
        Assert.That(Ksm.KsmHosts.Read(b, startB), Is.EqualTo(Ksm.KsmHosts.PageOf(100)));

        a.Write(startA, new byte[] { 1 });
        Assert.That(Ksm.KsmHosts.Read(b, startB), Is.EqualTo(Ksm.KsmHosts.PageOf(100)), "cow_ksm from the migrated page leaves the sharer's content alone");
        Ksm.KsmHosts.FullScans(host, 2);
        Assert.That(HostMmAuditor.CheckKsmSettled(host), Is.Empty, "the scanner goes on with the migrated stable node");
    }

    [Test]
    public void Mbind_sets_where_later_faults_allocate_and_moves_misplaced_pages_with_move()
    {
        using var host = MigrationHosts.Create();
        var mm = host.CreateMm(0);
        var start = mm.Mmap(8 * Page, Protection.Read | Protection.Write);
        WritePattern(mm, start, 4, seed: 6);

        var none = mm.Mbind(start, 8 * Page, NumaPolicy.Bind(1));
        Assert.That(none.Migrated, Is.Zero, "without move nothing migrates");
        Assert.That(NodeOfPage(mm, start), Is.Zero);
        mm.Write(start + (6 * Page), new byte[] { 1 });
        Assert.That(NodeOfPage(mm, start + (6 * Page)), Is.EqualTo(1), "a new fault allocates on the bound node");

        var moved = mm.Mbind(start, 8 * Page, NumaPolicy.Bind(1), move: true);
        Assert.That(moved.Migrated, Is.EqualTo(4));
        Assert.That(Enumerable.Range(0, 4).All(i => NodeOfPage(mm, start + ((ulong)i * Page)) == 1), Is.True);
        Assert.That(CorruptPages(mm, start, 4, seed: 6), Is.Empty);

        mm.Mbind(start, 8 * Page, NumaPolicy.Interleave(0, 1), move: true);
        var nodes = Enumerable.Range(0, 4).Select(i => NodeOfPage(mm, start + ((ulong)i * Page))).ToArray();
        Assert.That(nodes.Distinct().Count(), Is.EqualTo(2), "interleave spreads the pages over both nodes");
        var vma = mm.Vmas.Single(v => v.Contains(start));
        for (var i = 0; i < 4; i++)
        {
            Assert.That(nodes[i], Is.EqualTo(vma.Policy.NodeFor(0, vma.PageIndexOf(start + ((ulong)i * Page)))), $"page {i} is on its interleave node");
        }

        Assert.That(CorruptPages(mm, start, 4, seed: 6), Is.Empty);
        AssertConsistent(host);
    }

    [Test]
    public void Mbind_on_part_of_a_mapping_splits_it_and_the_policies_show_per_vma()
    {
        using var host = MigrationHosts.Create();
        var mm = host.CreateMm(0);
        var start = mm.Mmap(4 * Page, Protection.Read | Protection.Write);

        mm.Mbind(start + Page, 2 * Page, NumaPolicy.Preferred(1));

        var vmas = mm.Vmas;
        Assert.That(vmas.Select(v => v.Policy.ToString()), Is.EqualTo(new[] { "local", "preferred=1", "local" }));
        mm.Mbind(start + Page, 2 * Page, NumaPolicy.Local);
        Assert.That(mm.Vmas.Select(v => v.Policy), Is.All.EqualTo(NumaPolicy.Local));
    }
}
