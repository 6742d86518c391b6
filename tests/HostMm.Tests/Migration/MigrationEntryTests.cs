using Hypervisor.HostMm.Frames;
using Hypervisor.HostMm.PageTables;
using Hypervisor.HostMm.Vmas;
using static Hypervisor.HostMm.Tests.Migration.MigrationHosts;

namespace Hypervisor.HostMm.Tests.Migration;

/// <summary>
/// What meets a migration entry while it exists (driven from the migrator's test seam, once every mapping is an entry):
/// a fault waits and then sees the new frame, mprotect makes it read-only, fork copies it, munmap and exit drop it.
/// </summary>
public class MigrationEntryTests
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(20);

    [Test]
    public void A_fault_on_a_migration_entry_waits_for_the_migration_and_then_reads_the_new_frame()
    {
        using var host = MigrationHosts.Create();
        var (mm, start) = Populated(host, 1, seed: 1);
        Task<byte[]>? reader = null;
        host.Migration.AfterUnmap = _ =>
        {
            Assert.That(HostPteEncoding.Classify(mm.PageTable.Read(start)), Is.EqualTo(HostPteKind.Migration));
            reader = Task.Run(() =>
            {
                var bytes = new byte[Page];
                mm.Read(start, bytes);
                return bytes;
            });
            Assert.That(SpinWait.SpinUntil(() => mm.MigrationEntryWaits == 1, Patience), Is.True, "the reader found the entry and waits");
            Assert.That(reader.IsCompleted, Is.False, "it waits while the migration holds the page");
        };

        var status = host.Migration.MovePages(mm, [start], [1]);

        Assert.That(status[0].Succeeded, Is.True);
        Assert.That(reader!.Wait(Patience), Is.True);
        Assert.That(reader.Result, Is.EqualTo(Reclaim.SwapHosts.PageData(0, 1)), "the waiter read the page's data, from the new frame");
        Assert.That(mm.GupMigrationEntryWaits, Is.EqualTo(1), "the host's read goes through get-user-pages");
        Assert.That(NodeOfPage(mm, start), Is.EqualTo(1));
        AssertConsistent(host);
    }

    [Test]
    public void A_write_fault_waiting_on_the_entry_writes_into_the_new_frame()
    {
        using var host = MigrationHosts.Create();
        var (mm, start) = Populated(host, 1, seed: 2);
        Task? writer = null;
        host.Migration.AfterUnmap = _ =>
        {
            writer = Task.Run(() => mm.Write(start + 8, new byte[] { 0xAB }));
            Assert.That(SpinWait.SpinUntil(() => mm.MigrationEntryWaits == 1, Patience), Is.True);
        };

        host.Migration.MovePages(mm, [start], [1]);

        Assert.That(writer!.Wait(Patience), Is.True);
        var bytes = new byte[Page];
        mm.Read(start, bytes);
        var expected = Reclaim.SwapHosts.PageData(0, 2);
        expected[8] = 0xAB;
        Assert.That(bytes, Is.EqualTo(expected), "the write landed after the copy, in the frame that stays");
        AssertConsistent(host);
    }

    [Test]
    public void Mprotect_read_only_over_an_entry_makes_it_a_read_entry_and_the_new_frame_is_mapped_read_only()
    {
        using var host = MigrationHosts.Create();
        var (mm, start) = Populated(host, 1, seed: 3);
        host.Migration.AfterUnmap = _ =>
        {
            Assert.That(HostPteEncoding.IsMigrationWritable(mm.PageTable.Read(start)), Is.True);
            mm.Mprotect(start, Page, Protection.Read);
            var entry = mm.PageTable.Read(start);
            Assert.That(HostPteEncoding.Classify(entry), Is.EqualTo(HostPteKind.Migration));
            Assert.That(HostPteEncoding.IsMigrationWritable(entry), Is.False);
        };

        host.Migration.MovePages(mm, [start], [1]);

        var pte = mm.PageTable.Read(start);
        Assert.That(pte.IsPresent && !pte.IsWritable, Is.True);
        Assert.That(CorruptPages(mm, start, 1, seed: 3), Is.Empty);
        AssertConsistent(host);
    }

    [Test]
    public void Mprotect_none_over_an_entry_restores_the_new_frame_as_a_prot_none_mapping()
    {
        using var host = MigrationHosts.Create();
        var (mm, start) = Populated(host, 1, seed: 4);
        host.Migration.AfterUnmap = _ => mm.Mprotect(start, Page, Protection.None);

        host.Migration.MovePages(mm, [start], [1]);

        var pte = mm.PageTable.Read(start);
        Assert.That(HostPteEncoding.Classify(pte), Is.EqualTo(HostPteKind.ProtNone));
        Assert.That(host.Memory.NodeOf(pte.Pfn), Is.EqualTo(1));
        mm.Mprotect(start, Page, Protection.Read | Protection.Write);
        Assert.That(CorruptPages(mm, start, 1, seed: 4), Is.Empty);
        AssertConsistent(host);
    }

    [Test]
    public void Fork_over_an_entry_copies_it_and_the_child_maps_the_new_frame_too()
    {
        using var host = MigrationHosts.Create();
        var (parent, start) = Populated(host, 1, seed: 5);
        Mm? child = null;
        host.Migration.AfterUnmap = _ =>
        {
            child = parent.Fork();
            Assert.That(HostPteEncoding.Classify(child.PageTable.Read(start)), Is.EqualTo(HostPteKind.Migration));
            Assert.That(HostPteEncoding.IsMigrationWritable(parent.PageTable.Read(start)), Is.False, "a private writable entry is made read-only in both");
        };

        var status = host.Migration.MovePages(parent, [start], [1]);

        Assert.That(status[0].Succeeded, Is.True);
        var newPfn = parent.PageTable.Read(start).Pfn;
        Assert.That(child!.PageTable.Read(start).Pfn, Is.EqualTo(newPfn));
        Assert.That(host.Memory.Frame(newPfn).MapCount, Is.EqualTo(2));
        Assert.That(child.Stats.RssPages, Is.EqualTo(1));
        child.Write(start, new byte[] { 7 }); // copy-on-write break in the child
        Assert.That(CorruptPages(parent, start, 1, seed: 5), Is.Empty, "the parent's page is unchanged by the child's write");
        AssertConsistent(host);
    }

    [Test]
    public void Munmap_over_an_entry_drops_it_and_the_new_frame_is_freed_with_nothing_mapping_it()
    {
        using var host = MigrationHosts.Create();
        var (mm, start) = Populated(host, 2, seed: 6);
        var freeOnNode1 = host.Memory.GetNode(1).FreeFrames;
        host.Migration.AfterUnmap = _ => mm.Munmap(start, Page);

        var status = host.Migration.MovePages(mm, [start], [1]);

        Assert.That(status[0].Succeeded, Is.True, "the copy finished; nothing mapped it any more");
        Assert.That(mm.PageTable.Read(start).IsNone, Is.True);
        Assert.That(mm.Stats.RssPages, Is.EqualTo(1), "the zapped entry left RSS");
        Assert.That(host.Memory.GetNode(1).FreeFrames, Is.EqualTo(freeOnNode1), "the new frame was freed");
        AssertConsistent(host);
    }

    [Test]
    public void Exit_over_an_entry_leaves_nothing_behind()
    {
        using var host = MigrationHosts.Create();
        var (mm, start) = Populated(host, 1, seed: 7);
        var free = host.Memory.FreeFrames;
        host.Migration.AfterUnmap = _ => mm.Exit();

        host.Migration.MovePages(mm, [start], [1]);

        Assert.That(mm.HasExited, Is.True);
        Assert.That(host.Memory.FreeFrames, Is.GreaterThan(free), "the old frame, the new one and the page tables are free");
        AssertConsistent(host);
    }

    [Test]
    public void The_auditor_reports_a_migration_entry_left_behind()
    {
        using var host = MigrationHosts.Create();
        var (mm, start) = Populated(host, 1, seed: 8);
        var pfn = mm.PageTable.Read(start).Pfn;
        Assert.That(host.Reclaim.TryIsolate(pfn), Is.True);
        host.Memory.SetFlags(pfn, FrameFlags.Locked);
        Assert.That(mm.EnterRmapReadWaiting(out var taken), Is.True);
        try
        {
            Assert.That(mm.TryToMigrateOne(start, pfn), Is.True);
        }
        finally
        {
            if (taken)
            {
                mm.ExitRmapRead();
            }
        }

        Assert.That(HostMmAuditor.Check(host), Has.None.Contains("migration entry"), "while the frame is locked the entry belongs to a migration");
        host.Memory.ClearFlags(pfn, FrameFlags.Locked);
        Assert.That(HostMmAuditor.Check(host), Has.Some.Contains("migration entry was left behind"));
    }
}
