using Hypervisor.HostMm.Vmas;
using static Hypervisor.HostMm.Tests.Ksm.KsmHosts;

namespace Hypervisor.HostMm.Tests.Ksm;

/// <summary>The stable tree's sharing limit (chains and dups), use_zero_pages, and smart scan.</summary>
public class KsmStableTreeTests
{
    [Test]
    public void Three_hundred_equal_pages_with_max_page_sharing_256_make_a_chain_of_two_dups()
    {
        using var host = Create();
        var mm = host.CreateMm();
        var start = MapMergeable(mm, 300, i => 77);

        FullScans(host);

        var stats = host.Ksm.Stats;
        Assert.That(stats.StableNodeChains, Is.EqualTo(1));
        Assert.That(stats.StableNodeDups, Is.EqualTo(2));
        Assert.That(stats.PagesShared, Is.EqualTo(2));
        Assert.That(stats.PagesSharing, Is.EqualTo(298));
        var frames = Enumerable.Range(0, 300).Select(i => FrameAt(mm, start + ((ulong)i * Page))).GroupBy(p => p).Select(g => g.Count()).OrderDescending().ToList();
        Assert.That(frames, Is.EqualTo(new[] { 256, 44 }), "one KSM page serves at most max_page_sharing mappings");
        Assert.That(Read(mm, start + (299 * Page)), Is.EqualTo(PageOf(77)));
        AssertSettled(host);
    }

    [Test]
    public void A_smaller_max_page_sharing_splits_into_more_dups()
    {
        using var host = Create();
        host.Ksm.MaxPageSharing = 2;
        var mm = host.CreateMm();
        MapMergeable(mm, 7, i => 78);

        FullScans(host);

        var stats = host.Ksm.Stats;
        Assert.That((stats.StableNodeChains, stats.StableNodeDups, stats.PagesShared, stats.PagesSharing), Is.EqualTo((1L, 3L, 3L, 3L)), "three pairs; the seventh page waits in the unstable tree");
        Assert.That(stats.PagesUnshared, Is.EqualTo(1));
    }

    [Test]
    public void A_dup_whose_page_went_is_pruned_and_the_chain_goes_with_its_last_dup()
    {
        using var host = Create();
        host.Ksm.MaxPageSharing = 2;
        var mm = host.CreateMm();
        var start = MapMergeable(mm, 4, i => 79);
        FullScans(host);
        Assert.That(host.Ksm.Stats.StableNodeDups, Is.EqualTo(2));

        mm.Munmap(start, 4 * Page);
        mm.Mmap(Page, Protection.Read | Protection.Write); // keeps the process listed with mergeable memory gone
        MapMergeable(mm, 2, i => 79);
        FullScans(host);

        var stats = host.Ksm.Stats;
        Assert.That((stats.StableNodeChains, stats.StableNodeDups), Is.EqualTo((0L, 0L)), "the stale dups were pruned on lookup");
        Assert.That((stats.PagesShared, stats.PagesSharing), Is.EqualTo((1L, 1L)));
        AssertConsistent(host);
    }

    [Test]
    public void Use_zero_pages_merges_zero_filled_pages_with_the_zero_page()
    {
        using var host = Create();
        host.Ksm.UseZeroPages = true;
        var mm = host.CreateMm();
        var start = MapMergeable(mm, 3, i => i == 1 ? 5 : 0); // pages 0 and 2 written with zeroes: real frames
        var rss = mm.Stats.RssPages;
        Assert.That(rss, Is.EqualTo(3));

        FullScans(host);

        Assert.That(FrameAt(mm, start), Is.EqualTo(host.ZeroPfn));
        Assert.That(FrameAt(mm, start + (2 * Page)), Is.EqualTo(host.ZeroPfn));
        var pte = mm.PageTable.Read(start);
        Assert.That(pte.IsDirty && !pte.IsWritable, Is.True, "a KSM-placed zero page is read-only and marked dirty");
        Assert.That(host.Ksm.Stats.KsmZeroPages, Is.EqualTo(2));
        Assert.That(host.Ksm.ProcessStats(mm).ZeroPages, Is.EqualTo(2));
        Assert.That(host.Ksm.Stats.PagesShared, Is.Zero, "zero pages need no KSM page");
        Assert.That(host.Ksm.Stats.GeneralProfit, Is.EqualTo((2 * 4096) - (3 * 64)));
        Assert.That(mm.Stats.RssPages, Is.EqualTo(1));
        Assert.That(Read(mm, start), Is.EqualTo(PageOf(0)));
        AssertConsistent(host);

        mm.Write(start, PageOf(6));
        Assert.That(Read(mm, start), Is.EqualTo(PageOf(6)));
        Assert.That(host.Ksm.Stats.KsmZeroPages, Is.EqualTo(1), "a write replaces the zero page");
        mm.Munmap(start + (2 * Page), Page);
        Assert.That(host.Ksm.Stats.KsmZeroPages, Is.Zero, "munmap drops the last one");
        Assert.That(mm.Stats.RssPages, Is.EqualTo(2));
        AssertConsistent(host);
    }

    [Test]
    public void Without_use_zero_pages_zero_filled_pages_merge_into_one_KSM_page()
    {
        using var host = Create();
        var mm = host.CreateMm();
        var start = MapMergeable(mm, 3, i => 0);

        FullScans(host);

        Assert.That(FrameAt(mm, start), Is.Not.EqualTo(host.ZeroPfn));
        Assert.That(IsKsm(host, mm, start), Is.True);
        Assert.That((host.Ksm.Stats.PagesShared, host.Ksm.Stats.PagesSharing, host.Ksm.Stats.KsmZeroPages), Is.EqualTo((1L, 2L, 0L)));
    }

    [Test]
    public void Unmerge_replaces_KSM_placed_zero_pages_with_private_pages()
    {
        using var host = Create();
        host.Ksm.UseZeroPages = true;
        var mm = host.CreateMm();
        var start = MapMergeable(mm, 2, i => 0);
        FullScans(host);
        Assert.That(host.Ksm.Stats.KsmZeroPages, Is.EqualTo(2));

        mm.Madvise(start, 2 * Page, Advice.Unmergeable);

        Assert.That(host.Ksm.Stats.KsmZeroPages, Is.Zero);
        Assert.That(FrameAt(mm, start), Is.Not.EqualTo(host.ZeroPfn));
        Assert.That(Read(mm, start), Is.EqualTo(PageOf(0)));
        AssertConsistent(host);
    }

    [Test]
    public void Smart_scan_skips_pages_that_never_merge_and_counts_them()
    {
        using var host = Create();
        var mm = host.CreateMm();
        MapMergeable(mm, 4, i => 900 + i); // all different: never merge

        FullScans(host, 12);

        var stats = host.Ksm.Stats;
        Assert.That(stats.PagesSkipped, Is.GreaterThan(0));
        Assert.That(stats.PagesScanned + stats.PagesSkipped, Is.EqualTo(48), "every visit is scanned or skipped");

        using var plain = Create();
        plain.Ksm.SmartScan = false;
        var other = plain.CreateMm();
        MapMergeable(other, 4, i => 900 + i);
        FullScans(plain, 12);
        Assert.That(plain.Ksm.Stats.PagesSkipped, Is.Zero);
        Assert.That(plain.Ksm.Stats.PagesScanned, Is.EqualTo(48));
    }

    [Test]
    public void Smart_scan_never_skips_merged_pages()
    {
        using var host = Create();
        var mm = host.CreateMm();
        var start = MapMergeable(mm, 2, i => 901);
        FullScans(host, 12);

        Assert.That(host.Ksm.Stats.PagesSkipped, Is.Zero);
        Assert.That(FrameAt(mm, start), Is.EqualTo(FrameAt(mm, start + Page)));
    }

    [Test]
    public void A_KSM_placed_zero_page_keeps_its_count_through_prot_none_fork_and_munmap()
    {
        using var host = Create();
        host.Ksm.UseZeroPages = true;
        var mm = host.CreateMm();
        var start = MapMergeable(mm, 2, i => 0);
        FullScans(host);
        Assert.That(host.Ksm.Stats.KsmZeroPages, Is.EqualTo(2));

        mm.Mprotect(start, 2 * Page, Protection.None);
        AssertConsistent(host);
        var child = mm.Fork();
        Assert.That(host.Ksm.ProcessStats(child).ZeroPages, Is.EqualTo(2), "the child copied two KSM-placed zero-page PTEs");
        AssertConsistent(host);

        mm.Munmap(start, 2 * Page);
        Assert.That(host.Ksm.ProcessStats(mm).ZeroPages, Is.Zero);
        child.Mprotect(start, 2 * Page, Protection.Read);
        Assert.That(Read(child, start), Is.EqualTo(PageOf(0)));
        child.Exit();
        Assert.That(host.Ksm.Stats.KsmZeroPages, Is.Zero);
        AssertConsistent(host);
    }
}
