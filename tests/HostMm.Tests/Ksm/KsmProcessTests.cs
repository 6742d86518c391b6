using Hypervisor.HostMm.Ksm;
using Hypervisor.HostMm.Swap;
using Hypervisor.HostMm.Tests.Reclaim;
using Hypervisor.HostMm.Vmas;
using static Hypervisor.HostMm.Tests.Ksm.KsmHosts;

namespace Hypervisor.HostMm.Tests.Ksm;

/// <summary>Scan-list membership: PR_SET_MEMORY_MERGE across fork, repeated advice, and unmerging swapped KSM pages.</summary>
public class KsmProcessTests
{
    [Test]
    public void A_child_inherits_memory_merge_and_its_new_mappings_are_mergeable()
    {
        using var host = Create();
        var parent = host.CreateMm();
        parent.SetMemoryMerge(true);
        parent.Mmap(Page, Protection.Read | Protection.Write);

        var child = parent.Fork();
        var mapped = child.Mmap(2 * Page, Protection.Read | Protection.Write);
        child.Write(mapped, PageOf(800));
        child.Write(mapped + Page, PageOf(800));

        Assert.That(child.MemoryMerge, Is.True);
        Assert.That(child.Vmas.All(v => (v.Flags & VmaFlags.Mergeable) != 0), Is.True);
        FullScans(host);
        Assert.That(FrameAt(child, mapped), Is.EqualTo(FrameAt(child, mapped + Page)), "the child was put on the scan list at fork");
        AssertSettled(host);
    }

    [Test]
    public void Repeated_advice_lists_a_process_once()
    {
        using var host = Create();
        var mm = host.CreateMm();
        var start = MapMergeable(mm, 3, i => 810 + i);
        mm.Madvise(start, 3 * Page, Advice.Mergeable);
        mm.SetMemoryMerge(true);

        FullScans(host, 1);

        Assert.That(host.Ksm.Stats.RmapItems, Is.EqualTo(3));
        Assert.That(host.Ksm.Stats.PagesScanned, Is.EqualTo(3), "each page once per pass");
        Assert.That(host.Ksm.Step(0), Is.Zero);
    }

    [Test]
    public void Run_unmerge_leaves_swapped_out_KSM_pages_readable_by_every_sharer()
    {
        using var host = SwapHosts.Create(SwapDeviceKind.Zram);
        var a = host.CreateMm();
        var b = host.CreateMm();
        var pa = MapMergeable(a, 2, i => 820);
        var pb = MapMergeable(b, 2, i => 820);
        FullScans(host);
        var kpfn = FrameAt(a, pa);
        for (var round = 0; round < 8 && !host.Memory.IsFree(kpfn); round++)
        {
            host.Reclaim.ReclaimCgroup(host.Reclaim.Root, 4096);
        }

        Assert.That(host.Memory.IsFree(kpfn), Is.True);

        host.Ksm.Run = KsmRunMode.Unmerge;

        Assert.That(Read(b, pb + Page), Is.EqualTo(PageOf(820)));
        Assert.That(Read(a, pa), Is.EqualTo(PageOf(820)));
        Assert.That(Read(a, pa + Page), Is.EqualTo(PageOf(820)));
        Assert.That(Read(b, pb), Is.EqualTo(PageOf(820)));
        Assert.That(host.Ksm.Stats.RmapItems, Is.Zero);
        AssertConsistent(host);
    }
}
