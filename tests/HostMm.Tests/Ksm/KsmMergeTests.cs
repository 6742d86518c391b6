using Hypervisor.HostMm.Ksm;
using Hypervisor.HostMm.Vmas;
using static Hypervisor.HostMm.Tests.Ksm.KsmHosts;

namespace Hypervisor.HostMm.Tests.Ksm;

/// <summary>Merging and copy-on-write breaks: what processes read, the PTEs, and the Linux counters for known layouts.</summary>
public class KsmMergeTests
{
    [Test]
    public void Equal_pages_of_two_processes_merge_on_the_second_full_scan_and_read_the_same()
    {
        using var host = Create();
        var a = host.CreateMm();
        var b = host.CreateMm();
        var pa = MapMergeable(a, 4, i => 100 + i);
        var pb = MapMergeable(b, 4, i => 100 + i);
        var rssBefore = a.Stats.RssPages + b.Stats.RssPages;

        FullScans(host, 1);
        Assert.That(host.Ksm.Stats.PagesShared, Is.Zero, "the first visit of a page only records its checksum");

        FullScans(host, 1);

        for (var i = 0; i < 4; i++)
        {
            var address = (ulong)i * Page;
            Assert.That(FrameAt(a, pa + address), Is.EqualTo(FrameAt(b, pb + address)), $"page {i} is one frame in both");
            Assert.That(IsKsm(host, a, pa + address), Is.True);
            Assert.That(a.PageTable.Read(pa + address).IsWritable, Is.False, "a KSM page is mapped read-only");
            Assert.That(Read(a, pa + address), Is.EqualTo(PageOf(100 + i)));
            Assert.That(Read(b, pb + address), Is.EqualTo(PageOf(100 + i)));
        }

        var stats = host.Ksm.Stats;
        Assert.That(stats.PagesShared, Is.EqualTo(4));
        Assert.That(stats.PagesSharing, Is.EqualTo(4));
        Assert.That(stats.RmapItems, Is.EqualTo(8));
        Assert.That(stats.GeneralProfit, Is.EqualTo((4 * 4096) - (8 * KsmScanner.RmapItemBytes)));
        Assert.That(host.Memory.FreeFrames, Is.GreaterThan(0));
        Assert.That(a.Stats.RssPages + b.Stats.RssPages, Is.EqualTo(rssBefore), "RSS counts each mapping of a KSM page");
        Assert.That(host.Ksm.ProcessStats(a).MergingPages, Is.EqualTo(4));
        Assert.That(host.Ksm.ProcessStats(b).MergingPages, Is.EqualTo(4));
        AssertSettled(host);
    }

    [Test]
    public void Merging_frees_the_duplicate_frames()
    {
        using var host = Create();
        var a = host.CreateMm();
        var b = host.CreateMm();
        MapMergeable(a, 16, i => 7);
        MapMergeable(b, 16, i => 7);
        var free = host.Memory.FreeFrames;

        FullScans(host);

        Assert.That(host.Memory.FreeFrames - free, Is.EqualTo(31), "32 equal pages become one KSM page");
        Assert.That(host.Ksm.Stats.PagesShared, Is.EqualTo(1));
        Assert.That(host.Ksm.Stats.PagesSharing, Is.EqualTo(31));
        AssertSettled(host);
    }

    [Test]
    public void A_write_after_the_merge_copies_the_page_and_stays_private()
    {
        using var host = Create();
        var a = host.CreateMm();
        var b = host.CreateMm();
        var pa = MapMergeable(a, 2, i => 9);
        var pb = MapMergeable(b, 2, i => 9);
        FullScans(host);
        var kpfn = FrameAt(a, pa);
        Assert.That(FrameAt(b, pb), Is.EqualTo(kpfn));

        var mine = PageOf(1234);
        a.Write(pa, mine);

        Assert.That(Read(a, pa), Is.EqualTo(mine));
        Assert.That(Read(b, pb), Is.EqualTo(PageOf(9)), "the other process still reads the merged content");
        Assert.That(Read(a, pa + Page), Is.EqualTo(PageOf(9)));
        Assert.That(FrameAt(a, pa), Is.Not.EqualTo(kpfn));
        Assert.That(a.PageTable.Read(pa).IsWritable, Is.True);
        Assert.That(host.Stats.CowKsm, Is.EqualTo(1));
        AssertConsistent(host);
    }

    [Test]
    public void A_write_fault_on_a_KSM_page_copies_even_when_it_is_the_only_mapping()
    {
        using var host = Create();
        var a = host.CreateMm();
        var pa = MapMergeable(a, 2, i => 5);
        FullScans(host);
        var kpfn = FrameAt(a, pa);
        Assert.That(FrameAt(a, pa + Page), Is.EqualTo(kpfn));
        a.Write(pa + Page, PageOf(6)); // the second mapping breaks away: the first is the KSM page's only mapping

        a.Write(pa, PageOf(8));

        Assert.That(FrameAt(a, pa), Is.Not.EqualTo(kpfn), "cow_ksm: a KSM page is never reused in place");
        Assert.That(Read(a, pa), Is.EqualTo(PageOf(8)));
        Assert.That(Read(a, pa + Page), Is.EqualTo(PageOf(6)));
        Assert.That(host.Stats.CowKsm, Is.EqualTo(2));
        Assert.That(host.Memory.IsFree(kpfn), Is.True, "the KSM page went with its last mapping");
        AssertConsistent(host);
    }

    [Test]
    public void Known_layout_gives_linux_counters()
    {
        using var host = Create();
        var mm = host.CreateMm();
        // 6 pages of A, 3 of B, 1 unique: 2 KSM pages, 5 + 2 sharing, 1 unshared.
        int[] layout = [1, 1, 2, 1, 3, 2, 1, 1, 2, 1];
        MapMergeable(mm, layout.Length, i => layout[i] * 1000);

        FullScans(host);

        var stats = host.Ksm.Stats;
        Assert.That(stats.PagesShared, Is.EqualTo(2));
        Assert.That(stats.PagesSharing, Is.EqualTo(7));
        Assert.That(stats.PagesUnshared, Is.EqualTo(1));
        Assert.That(stats.PagesVolatile, Is.Zero);
        Assert.That(stats.RmapItems, Is.EqualTo(10));
        Assert.That(stats.FullScans, Is.EqualTo(2));
        Assert.That(stats.GeneralProfit, Is.EqualTo((7 * 4096) - (10 * 64)));
        Assert.That(stats.Merges, Is.EqualTo(7), "each page whose mapping was replaced");
        var process = host.Ksm.ProcessStats(mm);
        Assert.That(process.MergingPages, Is.EqualTo(9));
        Assert.That(process.RmapItems, Is.EqualTo(10));
        Assert.That(process.Profit, Is.EqualTo((9 * 4096) - (10 * 64)), "ksm_process_profit counts every merging page of the process");
        AssertSettled(host);
    }

    [Test]
    public void A_page_that_changes_between_visits_is_volatile_and_never_merged()
    {
        using var host = Create();
        var mm = host.CreateMm();
        var start = MapMergeable(mm, 2, i => 3);
        host.Ksm.Run = KsmRunMode.Merge;
        host.Ksm.Step(2); // first visits: checksums recorded
        mm.Write(start, PageOf(4)); // page 0 changes
        mm.Write(start + Page, PageOf(4)); // page 1 too: equal again, but both changed since their checksum
        host.Ksm.Step(2);

        Assert.That(host.Ksm.Stats.PagesShared, Is.Zero, "a changed checksum is only recorded");
        Assert.That(host.Ksm.Stats.PagesVolatile, Is.EqualTo(2));

        FullScans(host);

        Assert.That(FrameAt(mm, start), Is.EqualTo(FrameAt(mm, start + Page)), "once stable they merge");
        Assert.That(Read(mm, start), Is.EqualTo(PageOf(4)));
        AssertConsistent(host);
    }

    [Test]
    public void Step_scans_nothing_unless_run_is_merge_and_memory_is_mergeable()
    {
        using var host = Create();
        var mm = host.CreateMm();
        var start = mm.Mmap(4 * Page, Protection.Read | Protection.Write);
        mm.Write(start, PageOf(1));

        Assert.That(host.Ksm.Run, Is.EqualTo(KsmRunMode.Stop), "Linux's default");
        Assert.That(host.Ksm.Step(), Is.Zero);
        host.Ksm.Run = KsmRunMode.Merge;
        Assert.That(host.Ksm.Step(), Is.Zero, "nothing is mergeable");

        mm.Madvise(start, 4 * Page, Advice.Mergeable);
        Assert.That(host.Ksm.Step(), Is.EqualTo(1), "one present page");
        host.Ksm.Run = KsmRunMode.Stop;
        Assert.That(host.Ksm.Step(), Is.Zero);
    }

    [Test]
    public void Pages_of_a_VMA_that_is_not_mergeable_are_never_merged()
    {
        using var host = Create();
        var mm = host.CreateMm();
        var merge = MapMergeable(mm, 2, i => 11);
        var plain = mm.Mmap(2 * Page, Protection.Read | Protection.Write);
        mm.Write(plain, PageOf(11));
        mm.Write(plain + Page, PageOf(11));

        FullScans(host);

        Assert.That(FrameAt(mm, merge), Is.EqualTo(FrameAt(mm, merge + Page)));
        Assert.That(FrameAt(mm, plain), Is.Not.EqualTo(FrameAt(mm, merge)));
        Assert.That(FrameAt(mm, plain), Is.Not.EqualTo(FrameAt(mm, plain + Page)));
        Assert.That(host.Ksm.Stats.RmapItems, Is.EqualTo(2));
    }
}
