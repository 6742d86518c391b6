using Hypervisor.Notifier;
using Hypervisor.HostMm.Tests.Processes;
using Hypervisor.Notifier.Tracing;
using static Hypervisor.HostMm.Tests.Ksm.KsmHosts;

namespace Hypervisor.HostMm.Tests.Ksm;

/// <summary>
/// KSM merging and breaking against reference/mmu-notifier.md §3: <c>write_protect_page</c> is start (Clear, one page)
/// → PTE cleared and flushed → read-only PTE set → end; <c>replace_page</c> is start (Clear, one page) → PTE cleared
/// and flushed → (≤6.9: change_pte) → the KSM page's PTE set → end, and the old page is freed after the end; the
/// copy-on-write break of a KSM page is the COW row.
/// </summary>
public class KsmOrderingTests
{
    [Test]
    public void Two_page_merge_is_write_protect_twice_then_replace_each_in_its_own_one_page_range_and_the_free_after_the_end()
    {
        using var host = Create();
        var mm = host.CreateMm();
        var start = MapMergeable(mm, 2, i => 21);
        FullScans(host, 1); // checksums recorded
        var replaced = FrameAt(mm, start);
        var recorder = TestHosts.Record(mm);

        FullScans(host, 1);

        // Page 0 went into the unstable tree; page 1 found it: page 1 is write-protected (becomes the KSM page), then
        // page 0 is write-protected and its PTE replaced by page 1.
        Assert.That(TestHosts.Timeline(recorder, mm), Is.EqualTo(
            "start:Clear pte flush pte end start:Clear pte flush pte end start:Clear pte flush pte end free"));
        var starts = recorder.Events.Where(e => e.Kind == NotifierTraceKind.InvalidateRangeStart).ToList();
        Assert.That(starts.Select(e => (e.Start, e.End)), Is.EqualTo(new[]
        {
            (start + Page, start + (2 * Page)),
            (start, start + Page),
            (start, start + Page),
        }), "each step covers exactly its one page");
        var free = recorder.Events.Single(e => e.Kind == NotifierTraceKind.FrameFree);
        Assert.That(free.Pfn, Is.EqualTo(replaced));
        Assert.That(free.Sequence, Is.GreaterThan(recorder.Events.Last(e => e.Kind == NotifierTraceKind.InvalidateRangeEnd).Sequence));
        Assert.That(FrameAt(mm, start), Is.EqualTo(FrameAt(mm, start + Page)));
    }

    [Test]
    public void Write_protect_page_clears_and_flushes_before_setting_the_read_only_pte_inside_start_end()
    {
        using var host = Create();
        var mm = host.CreateMm();
        var start = MapMergeable(mm, 2, i => 22);
        FullScans(host, 1);
        var recorder = TestHosts.Record(mm);

        FullScans(host, 1);

        var first = recorder.Events.TakeWhile(e => e.Kind != NotifierTraceKind.InvalidateRangeEnd).ToList();
        var ptes = first.Where(e => e.Kind == NotifierTraceKind.HostPteChange).ToList();
        Assert.That(ptes, Has.Count.EqualTo(2));
        Assert.That(ptes[0].Pte, Is.EqualTo(HostPte.None), "ptep_clear_flush first");
        Assert.That(ptes[1].Pte.IsWritable || ptes[1].Pte.IsDirty, Is.False, "then a clean read-only PTE");
        var flush = first.Single(e => e.Kind == NotifierTraceKind.HostTlbFlush);
        Assert.That(flush.Sequence, Is.GreaterThan(ptes[0].Sequence).And.LessThan(ptes[1].Sequence));
    }

    [Test]
    public void Replace_page_with_legacy_change_pte_calls_it_between_the_flush_and_the_new_pte()
    {
        using var host = Create(legacyChangePte: true);
        var mm = host.CreateMm();
        var start = MapMergeable(mm, 2, i => 23);
        FullScans(host, 1);
        var kpage = FrameAt(mm, start + Page);
        var recorder = TestHosts.Record(mm);

        FullScans(host, 1);

        Assert.That(TestHosts.Timeline(recorder, mm), Does.EndWith("start:Clear pte flush change_pte pte end free"));
        var change = recorder.Events.Single(e => e.Kind == NotifierTraceKind.ChangePte);
        Assert.That(change.Pte.Pfn, Is.EqualTo(kpage), "change_pte carries the KSM page's read-only PTE");
        Assert.That(change.Pte.IsWritable, Is.False);
        Assert.That(change.Start, Is.EqualTo(start));
    }

    [Test]
    public void Breaking_a_KSM_page_by_a_write_is_the_cow_row_and_frees_nothing_while_others_map_it()
    {
        using var host = Create();
        var a = host.CreateMm();
        var b = host.CreateMm();
        var pa = MapMergeable(a, 1, i => 24);
        MapMergeable(b, 1, i => 24);
        FullScans(host);
        Assert.That(IsKsm(host, a, pa), Is.True);
        var recorder = TestHosts.Record(a);

        a.Write(pa, PageOf(25));

        Assert.That(TestHosts.Timeline(recorder, a), Is.EqualTo("start:Clear pte flush pte end"), "copy → start → clear+flush → new PTE → end; the KSM page stays (b maps it)");
        var starts = recorder.Events.Where(e => e.Kind == NotifierTraceKind.InvalidateRangeStart).ToList();
        Assert.That(starts.Single().End - starts.Single().Start, Is.EqualTo(Page));
    }

    [Test]
    public void Breaking_the_last_mapping_of_a_KSM_page_frees_it_after_the_end()
    {
        using var host = Create();
        var a = host.CreateMm();
        var pa = MapMergeable(a, 2, i => 26);
        FullScans(host);
        var kpage = FrameAt(a, pa);
        a.Write(pa + Page, PageOf(27));
        var recorder = TestHosts.Record(a);

        a.Write(pa, PageOf(28));

        Assert.That(TestHosts.Timeline(recorder, a), Is.EqualTo("start:Clear pte flush pte end free"));
        Assert.That(recorder.Events.Single(e => e.Kind == NotifierTraceKind.FrameFree).Pfn, Is.EqualTo(kpage));
    }

    [Test]
    public void A_get_user_pages_reference_aborts_the_merge_and_restores_the_writable_pte()
    {
        using var host = Create();
        var mm = host.CreateMm();
        var start = MapMergeable(mm, 2, i => 29);
        FullScans(host, 1);
        var pinned = mm.GetUserPages(start + Page, write: true); // page 1 is the one write_protect_page meets first
        var before = mm.PageTable.Read(start + Page);
        var recorder = TestHosts.Record(mm);

        FullScans(host, 1);

        Assert.That(TestHosts.Timeline(recorder, mm), Is.EqualTo("start:Clear pte flush pte end"), "cleared, flushed, pin found, restored");
        Assert.That(mm.PageTable.Read(start + Page), Is.EqualTo(before));
        Assert.That(host.Ksm.Stats.PagesShared, Is.Zero);
        Assert.That(FrameAt(mm, start), Is.Not.EqualTo(FrameAt(mm, start + Page)));

        mm.ReleasePage(pinned.Pfn);
        FullScans(host, 1);
        Assert.That(FrameAt(mm, start), Is.EqualTo(FrameAt(mm, start + Page)), "merged once the reference is gone");
        Assert.That(host.Ksm.Stats.PagesShared, Is.EqualTo(1));
        KsmHosts.AssertConsistent(host);
    }

    [Test]
    public void A_page_written_through_a_reference_during_the_merge_is_never_merged()
    {
        using var host = Create();
        var mm = host.CreateMm();
        var start = MapMergeable(mm, 2, i => 30);
        FullScans(host, 1);
        // A writer holds a reference and writes after the scanner's checksum, as a racing Mm.Write would.
        var pinned = mm.GetUserPages(start, write: true);
        host.Memory.FrameBytes(pinned.Pfn)[0] ^= 0xFF;

        FullScans(host, 1);

        Assert.That(FrameAt(mm, start), Is.Not.EqualTo(FrameAt(mm, start + Page)));
        var expected = PageOf(30);
        expected[0] ^= 0xFF;
        mm.ReleasePage(pinned.Pfn);
        Assert.That(Read(mm, start), Is.EqualTo(expected));
        Assert.That(Read(mm, start + Page), Is.EqualTo(PageOf(30)));
        KsmHosts.AssertConsistent(host);
    }

    [Test]
    public void A_pinned_tree_page_aborts_the_second_half_and_the_first_page_is_given_back_its_anonymous_rmap()
    {
        using var host = Create();
        var mm = host.CreateMm();
        var start = MapMergeable(mm, 2, i => 31);
        FullScans(host, 1);
        var pinned = mm.GetUserPages(start, write: true); // page 0 is the unstable tree's page
        var first = FrameAt(mm, start + Page);
        var recorder = TestHosts.Record(mm);

        FullScans(host, 1);

        Assert.That(TestHosts.Timeline(recorder, mm), Is.EqualTo("start:Clear pte flush pte end start:Clear pte flush pte end"), "page 1 write-protected; page 0 cleared, found pinned and restored");
        Assert.That(IsKsm(host, mm, start + Page), Is.False, "the half-made KSM page is an anonymous page again");
        Assert.That(host.Memory.Frame(first).RmapOwner, Is.Not.EqualTo(Hypervisor.HostMm.Frames.FrameInfo.NoOwner));
        Assert.That(host.Ksm.Stats.PagesShared, Is.Zero);
        mm.ReleasePage(pinned.Pfn);
        KsmHosts.AssertConsistent(host);

        mm.Write(start + Page, PageOf(32));
        Assert.That(FrameAt(mm, start + Page), Is.EqualTo(first), "exclusive and read-only: the write reuses it in place");
        Assert.That(host.Stats.CowKsm, Is.Zero);
        FullScans(host);
        KsmHosts.AssertSettled(host);
    }

    [Test]
    public void Merging_with_the_zero_page_is_write_protect_then_replace_and_frees_the_page_after_the_end()
    {
        using var host = Create();
        host.Ksm.UseZeroPages = true;
        var mm = host.CreateMm();
        var start = MapMergeable(mm, 1, i => 0);
        FullScans(host, 1);
        var page = FrameAt(mm, start);
        var recorder = TestHosts.Record(mm);

        FullScans(host, 1);

        Assert.That(TestHosts.Timeline(recorder, mm), Is.EqualTo("start:Clear pte flush pte end start:Clear pte flush pte end free"));
        Assert.That(recorder.Events.Single(e => e.Kind == NotifierTraceKind.FrameFree).Pfn, Is.EqualTo(page));
        var last = recorder.Events.Last(e => e.Kind == NotifierTraceKind.HostPteChange);
        Assert.That((last.Pte.Pfn, last.Pte.IsDirty, last.Pte.IsWritable), Is.EqualTo((host.ZeroPfn, true, false)), "the zero page, read-only, marked dirty as KSM-placed");
    }
}
