using Hypervisor.HostMm.Ksm;
using Hypervisor.HostMm.Vmas;
using static Hypervisor.HostMm.Tests.Ksm.KsmHosts;

namespace Hypervisor.HostMm.Tests.Ksm;

/// <summary>fork, exit, munmap and mremap of processes with merged pages: the scanner's structures stay consistent.</summary>
public class KsmLifecycleTests
{
    [Test]
    public void A_forked_child_keeps_mergeable_vmas_joins_the_scan_and_its_mappings_become_sharers()
    {
        using var host = Create();
        var parent = host.CreateMm();
        var start = MapMergeable(parent, 4, i => 500);
        FullScans(host);
        Assert.That((host.Ksm.Stats.PagesShared, host.Ksm.Stats.PagesSharing), Is.EqualTo((1L, 3L)));

        var child = parent.Fork();

        Assert.That(child.Vmas.All(v => (v.Flags & VmaFlags.Mergeable) != 0), Is.True, "VM_MERGEABLE survives fork");
        Assert.That(Read(child, start + Page), Is.EqualTo(PageOf(500)));
        FullScans(host);
        Assert.That(host.Ksm.ProcessStats(child).MergingPages, Is.EqualTo(4), "the child's mappings of the KSM page are sharers");
        Assert.That((host.Ksm.Stats.PagesShared, host.Ksm.Stats.PagesSharing), Is.EqualTo((1L, 7L)));
        AssertSettled(host);

        child.Write(start, PageOf(501));
        Assert.That(Read(parent, start), Is.EqualTo(PageOf(500)));
        AssertConsistent(host);
    }

    [Test]
    public void Exit_of_a_sharer_drops_its_items_and_the_last_sharer_frees_the_KSM_page()
    {
        using var host = Create();
        var a = host.CreateMm();
        var b = host.CreateMm();
        var pa = MapMergeable(a, 2, i => 510);
        MapMergeable(b, 2, i => 510);
        FullScans(host);
        var kpfn = FrameAt(a, pa);
        Assert.That(host.Memory.Frame(kpfn).MapCount, Is.EqualTo(4));

        b.Exit();
        Assert.That(host.Memory.Frame(kpfn).MapCount, Is.EqualTo(2));
        AssertConsistent(host);
        FullScans(host, 1);

        Assert.That(host.Ksm.Stats.RmapItems, Is.EqualTo(2), "the exited process's items went when the scanner met it");
        Assert.That((host.Ksm.Stats.PagesShared, host.Ksm.Stats.PagesSharing), Is.EqualTo((1L, 1L)));
        AssertSettled(host);

        a.Exit();
        Assert.That(host.Memory.IsFree(kpfn), Is.True);
        FullScans(host, 1);
        Assert.That((host.Ksm.Stats.RmapItems, host.Ksm.Stats.PagesShared, host.Ksm.Stats.PagesSharing), Is.EqualTo((0L, 0L, 0L)));
        Assert.That(host.Ksm.Step(), Is.Zero, "nothing left to scan");
        AssertSettled(host);
    }

    [Test]
    public void Munmap_of_merged_pages_drops_sharers_at_the_next_pass()
    {
        using var host = Create();
        var mm = host.CreateMm();
        var start = MapMergeable(mm, 4, i => 520);
        FullScans(host);
        var kpfn = FrameAt(mm, start);

        mm.Munmap(start, 2 * Page);
        Assert.That(host.Memory.Frame(kpfn).MapCount, Is.EqualTo(2));
        AssertConsistent(host);
        FullScans(host, 1);

        Assert.That((host.Ksm.Stats.RmapItems, host.Ksm.Stats.PagesShared, host.Ksm.Stats.PagesSharing), Is.EqualTo((2L, 1L, 1L)));
        AssertSettled(host);
        mm.Munmap(start + (2 * Page), 2 * Page);
        Assert.That(host.Memory.IsFree(kpfn), Is.True, "the KSM page went with its last mapping");
        FullScans(host, 1);
        Assert.That(host.Ksm.Stats.RmapItems, Is.Zero);
        AssertSettled(host);
    }

    [Test]
    public void Mremap_of_a_mergeable_mapping_breaks_its_KSM_pages_first_and_they_merge_again_at_the_new_place()
    {
        using var host = Create();
        var mm = host.CreateMm();
        var start = MapMergeable(mm, 3, i => 530);
        var other = MapMergeable(mm, 1, i => 530);
        FullScans(host);
        Assert.That(IsKsm(host, mm, start), Is.True);

        var moved = mm.Mremap(start, 3 * Page, 3 * Page, MremapFlags.MayMove | MremapFlags.Fixed, other + (64 * Page));

        Assert.That(IsKsm(host, mm, moved), Is.False, "as move_vma, the moved range was unmerged");
        Assert.That(Read(mm, moved + (2 * Page)), Is.EqualTo(PageOf(530)));
        AssertConsistent(host);
        FullScans(host);
        Assert.That(FrameAt(mm, moved), Is.EqualTo(FrameAt(mm, other)));
        AssertSettled(host);
    }

    [Test]
    public void A_process_that_joins_during_a_pass_goes_behind_the_cursor()
    {
        using var host = Create();
        var a = host.CreateMm();
        MapMergeable(a, 4, i => 540 + i);
        host.Ksm.Run = KsmRunMode.Merge;
        Assert.That(host.Ksm.Step(2), Is.EqualTo(2), "a pass over a is under way");

        var b = host.CreateMm();
        MapMergeable(b, 4, i => 550 + i);
        Assert.That(host.Ksm.Step(100), Is.EqualTo(2), "the pass ends with a's last pages: b is behind the cursor");
        Assert.That(host.Ksm.Stats.FullScans, Is.EqualTo(1));
        Assert.That(host.Ksm.Step(100), Is.EqualTo(8), "the next pass visits both");
    }
}
