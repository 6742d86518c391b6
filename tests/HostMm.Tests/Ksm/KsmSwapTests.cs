using Hypervisor.HostMm.Frames;
using Hypervisor.HostMm.Ksm;
using Hypervisor.HostMm.Swap;
using Hypervisor.HostMm.Tests.Reclaim;
using Hypervisor.Notifier;
using Hypervisor.Notifier.Tracing;
using static Hypervisor.HostMm.Tests.Ksm.KsmHosts;

namespace Hypervisor.HostMm.Tests.Ksm;

/// <summary>KSM pages under reclaim: rmap_walk_ksm finds every sharer's PTE, the page is swapped out and back in by each sharer.</summary>
public class KsmSwapTests
{
    private static Host CreateWithSwap() => SwapHosts.Create(SwapDeviceKind.Zram);

    /// <summary>Reclaims from the root cgroup until <paramref name="pfn"/> is freed (or gives up).</summary>
    private static void ReclaimUntilFreed(Host host, Pfn pfn)
    {
        for (var round = 0; round < 8 && !host.Memory.IsFree(pfn); round++)
        {
            host.Reclaim.ReclaimCgroup(host.Reclaim.Root, 4096);
        }

        Assert.That(host.Memory.IsFree(pfn), Is.True, "reclaim never freed the KSM page");
    }

    [Test]
    public void A_KSM_page_of_three_processes_is_unmapped_from_every_sharer_swapped_out_and_read_back_by_each()
    {
        using var host = CreateWithSwap();
        var mms = new[] { host.CreateMm(), host.CreateMm(), host.CreateMm() };
        var starts = mms.Select(mm => MapMergeable(mm, 2, i => 300)).ToArray();
        FullScans(host);
        var kpfn = FrameAt(mms[0], starts[0]);
        Assert.That(host.Memory.Frame(kpfn).MapCount, Is.EqualTo(6));
        var recorder = new NotifierEventRecorder();
        mms[1].Notifiers.Register(recorder);

        ReclaimUntilFreed(host, kpfn);

        for (var m = 0; m < 3; m++)
        {
            for (var i = 0; i < 2; i++)
            {
                var pte = mms[m].PageTable.Read(starts[m] + ((ulong)i * Page));
                Assert.That(pte.IsPresent, Is.False, $"process {m} page {i} still maps a frame");
                Assert.That(pte.IsNone, Is.False, "a swap entry, not nothing");
            }

            Assert.That(mms[m].Stats.SwapEntries, Is.EqualTo(2));
        }

        var starts1 = recorder.Events.Where(e => e.Kind == NotifierTraceKind.InvalidateRangeStart).ToList();
        Assert.That(starts1.Select(e => e.End - e.Start), Is.All.EqualTo(Page), "each sharer's PTE is unmapped inside its own one-page range");
        Assert.That(starts1.Select(e => e.Start).Distinct().Count(), Is.EqualTo(2), "both mappings of process 1");
        AssertConsistent(host);

        for (var m = 0; m < 3; m++)
        {
            for (var i = 0; i < 2; i++)
            {
                Assert.That(Read(mms[m], starts[m] + ((ulong)i * Page)), Is.EqualTo(PageOf(300)), $"process {m} page {i}");
            }
        }

        Assert.That(host.Stats.KsmSwpinCopy, Is.EqualTo(5), "the first sharer to fault owns the page read back; the five others get copies");
        AssertConsistent(host);

        FullScans(host);
        var merged = FrameAt(mms[0], starts[0]);
        Assert.That(mms.SelectMany((mm, m) => new[] { FrameAt(mm, starts[m]), FrameAt(mm, starts[m] + Page) }), Is.All.EqualTo(merged), "merged again");
        AssertConsistent(host);
    }

    [Test]
    public void A_forked_childs_mapping_of_a_KSM_page_is_found_by_the_reverse_map()
    {
        using var host = CreateWithSwap();
        var parent = host.CreateMm();
        var start = MapMergeable(parent, 2, i => 301);
        FullScans(host);
        var kpfn = FrameAt(parent, start);
        var child = parent.Fork();
        Assert.That(FrameAt(child, start + Page), Is.EqualTo(kpfn));
        Assert.That(host.Memory.Frame(kpfn).MapCount, Is.EqualTo(4));

        ReclaimUntilFreed(host, kpfn);

        Assert.That(child.PageTable.Read(start).IsPresent, Is.False);
        Assert.That(Read(child, start + Page), Is.EqualTo(PageOf(301)));
        Assert.That(Read(parent, start), Is.EqualTo(PageOf(301)));
        AssertConsistent(host);
    }

    [Test]
    public void Swap_in_while_the_KSM_page_is_still_in_the_swap_cache_maps_it_read_only_without_a_copy()
    {
        using var host = CreateWithSwap();
        var a = host.CreateMm();
        var b = host.CreateMm();
        var pa = MapMergeable(a, 1, i => 302);
        var pb = MapMergeable(b, 1, i => 302);
        FullScans(host);
        var kpfn = FrameAt(a, pa);
        host.Memory.Get(kpfn); // an extra reference keeps the page in the swap cache after its write

        for (var round = 0; round < 8 && host.Memory.Frame(kpfn).MapCount > 0; round++)
        {
            host.Reclaim.ReclaimCgroup(host.Reclaim.Root, 4096);
        }

        Assert.That(host.Memory.Frame(kpfn).MapCount, Is.Zero);
        Assert.That(host.Memory.Frame(kpfn).Has(FrameFlags.SwapCache | FrameFlags.Ksm), Is.True);

        Assert.That(Read(a, pa), Is.EqualTo(PageOf(302)));
        Assert.That(Read(b, pb), Is.EqualTo(PageOf(302)));

        Assert.That(FrameAt(a, pa), Is.EqualTo(kpfn));
        Assert.That(FrameAt(b, pb), Is.EqualTo(kpfn), "the KSM page is mapped again by both sharers");
        Assert.That(a.PageTable.Read(pa).IsWritable, Is.False);
        Assert.That(host.Stats.KsmSwpinCopy, Is.Zero);
        a.Write(pa, PageOf(303));
        Assert.That(Read(b, pb), Is.EqualTo(PageOf(302)));
        host.Memory.Put(kpfn);
        AssertConsistent(host);
    }

    [Test]
    public void Madvise_pageout_reclaims_a_KSM_page_only_mapped_once()
    {
        using var host = CreateWithSwap();
        var mm = host.CreateMm();
        var start = MapMergeable(mm, 2, i => 304);
        FullScans(host);
        var kpfn = FrameAt(mm, start);
        mm.Write(start + Page, PageOf(305)); // the KSM page keeps one mapping

        mm.Madvise(start, Page, Advice.PageOut);

        Assert.That(host.Memory.IsFree(kpfn), Is.True);
        Assert.That(Read(mm, start), Is.EqualTo(PageOf(304)));
        AssertConsistent(host);
    }

    [Test]
    public void After_run_unmerge_a_KSM_page_still_in_the_swap_cache_is_copied_at_swap_in()
    {
        using var host = CreateWithSwap();
        var a = host.CreateMm();
        var b = host.CreateMm();
        var pa = MapMergeable(a, 1, i => 306);
        var pb = MapMergeable(b, 1, i => 306);
        FullScans(host);
        var kpfn = FrameAt(a, pa);
        host.Memory.Get(kpfn); // keeps the page in the swap cache after its write
        for (var round = 0; round < 8 && host.Memory.Frame(kpfn).MapCount > 0; round++)
        {
            host.Reclaim.ReclaimCgroup(host.Reclaim.Root, 4096);
        }

        Assert.That(host.Memory.Frame(kpfn).MapCount, Is.Zero);

        host.Ksm.Run = Hypervisor.HostMm.Ksm.KsmRunMode.Unmerge;

        Assert.That(Read(a, pa), Is.EqualTo(PageOf(306)));
        Assert.That(Read(b, pb), Is.EqualTo(PageOf(306)));
        Assert.That(FrameAt(a, pa), Is.Not.EqualTo(kpfn));
        Assert.That(FrameAt(b, pb), Is.Not.EqualTo(kpfn));
        Assert.That(IsKsm(host, a, pa) || IsKsm(host, b, pb), Is.False, "no KSM page is mapped after run = 2");
        Assert.That(host.Stats.KsmSwpinCopy, Is.EqualTo(2));
        host.Memory.Put(kpfn);
        AssertConsistent(host);

        FullScans(host);
        Assert.That(FrameAt(a, pa), Is.EqualTo(FrameAt(b, pb)), "run = 1 merges them again");
        AssertSettled(host);
    }

    [Test]
    public void A_KSM_page_whose_count_reclaim_has_frozen_is_not_taken_for_stale()
    {
        using var host = CreateWithSwap();
        host.Ksm.SmartScan = false; // the third page is visited on every pass
        var mm = host.CreateMm();
        var start = MapMergeable(mm, 3, i => i < 2 ? 307 : 308);
        FullScans(host);
        var kpfn = FrameAt(mm, start);
        Assert.That(FrameAt(mm, start + Page), Is.EqualTo(kpfn));
        host.Memory.Get(kpfn); // keeps the page in the swap cache after its write
        for (var round = 0; round < 8 && host.Memory.Frame(kpfn).MapCount > 0; round++)
        {
            host.Reclaim.ReclaimCgroup(host.Reclaim.Root, 4096);
        }

        Assert.That(host.Memory.Frame(kpfn).MapCount, Is.Zero, "both mappings swapped out; the page waits in the swap cache");
        mm.Write(start + (2 * Page), PageOf(307)); // a third page with the KSM page's content
        host.Ksm.Run = KsmRunMode.Merge;
        FullScans(host, 1); // its new checksum is recorded
        var references = host.Memory.Frame(kpfn).RefCount;
        Assert.That(host.Memory.TryFreeze(kpfn, references), Is.True, "as reclaim's __remove_mapping freezes it");

        FullScans(host, 1); // the stable tree lookup meets the frozen page

        host.Memory.Unfreeze(kpfn, references);
        FullScans(host, 1);
        Assert.That(FrameAt(mm, start + (2 * Page)), Is.EqualTo(kpfn), "the node was kept: the third page merged into the KSM page");
        Assert.That(Read(mm, start), Is.EqualTo(PageOf(307)));
        Assert.That(FrameAt(mm, start), Is.EqualTo(kpfn), "swap-in maps the KSM page: its node is live");
        host.Memory.Put(kpfn);
        AssertConsistent(host);
    }
}
