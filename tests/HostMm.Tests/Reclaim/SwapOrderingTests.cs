using Hypervisor.Notifier;
using Hypervisor.HostMm.Vmas;
using Hypervisor.Notifier.Tracing;
using static Hypervisor.HostMm.Tests.Processes.TestHosts;
using static Hypervisor.HostMm.Tests.Reclaim.SwapHosts;

namespace Hypervisor.HostMm.Tests.Reclaim;

/// <summary>
/// Swap-out and swap-in against reference/mmu-notifier.md §3: <c>try_to_unmap_one</c> is start (Clear) → under the
/// page-table lock the PTE cleared and the swap entry installed, the TLB flushed → end; the page is written and freed
/// only after the end. Reclaim unmaps a run of one process's consecutive PTEs of one PTE table under one range (one
/// start, one flush, one end); pages shared by several processes keep the per-mapping form. Swap-in only adds a
/// mapping: no notifier at all.
/// </summary>
public class SwapOrderingTests
{
    [Test]
    public void Swap_out_clears_flushes_and_installs_the_swap_entry_inside_start_end_then_frees_after()
    {
        using var host = SwapHosts.Create();
        var mm = host.CreateMm();
        var start = mm.Mmap(2 * SwapHosts.Page, Protection.Read | Protection.Write);
        WritePattern(mm, start, 2, seed: 1);
        var recorder = Record(mm);

        mm.Madvise(start, 2 * SwapHosts.Page, Advice.PageOut);

        Assert.That(Timeline(recorder, mm), Is.EqualTo("start:Clear pte flush end free"), "the two consecutive pages are unmapped inside one start/end with one flush; the batch's pages are written as one run and freed (two frees, counted below) after the end");
        var starts = recorder.Events.Where(e => e.Kind is NotifierTraceKind.InvalidateRangeStart && e.MmId == mm.Id).ToList();
        Assert.That(starts, Has.Count.EqualTo(1));
        Assert.That((starts[0].Start, starts[0].End), Is.EqualTo((start, start + (2 * SwapHosts.Page))), "the range covers the run");
        var events = recorder.Events.Where(e => e.Kind is NotifierTraceKind.HostPteChange && e.MmId == mm.Id).ToList();
        Assert.That(events, Has.Count.EqualTo(4), "per page: present → none, then none → swap entry");
        Assert.That(recorder.Count(NotifierTraceKind.FrameFree), Is.EqualTo(2));
        SwapHosts.AssertConsistent(host);
    }

    [Test]
    public void A_run_stops_at_a_page_table_boundary_and_every_free_comes_after_every_end()
    {
        using var host = SwapHosts.Create();
        var mm = host.CreateMm();
        const ulong tableSpan = 2UL << 20;
        var region = mm.Mmap(2 * tableSpan, Protection.Read | Protection.Write);
        var boundary = new Hva((region.Value + tableSpan) & ~(tableSpan - 1));
        var first = boundary - (2 * SwapHosts.Page);
        WritePattern(mm, first, 4, seed: 4);
        var recorder = Record(mm);

        mm.Madvise(first, 4 * SwapHosts.Page, Advice.PageOut);

        Assert.That(Timeline(recorder, mm), Is.EqualTo("start:Clear pte flush end start:Clear pte flush end free"), "one range per PTE table");
        var starts = recorder.Events.Where(e => e.Kind is NotifierTraceKind.InvalidateRangeStart && e.MmId == mm.Id).Select(e => (e.Start, e.End)).ToList();
        Assert.That(starts, Is.EqualTo(new[] { (first, boundary), (boundary, boundary + (2 * SwapHosts.Page)) }));
        var lastEnd = recorder.Events.Last(e => e.Kind is NotifierTraceKind.InvalidateRangeEnd && e.MmId == mm.Id).Sequence;
        var frees = recorder.Events.Where(e => e.Kind is NotifierTraceKind.FrameFree).ToList();
        Assert.That(frees, Has.Count.EqualTo(4));
        Assert.That(frees.All(e => e.Sequence > lastEnd), Is.True, "no page is freed before the end of every range");
        Assert.That(CorruptPages(mm, first, 4, seed: 4), Is.Empty);
        SwapHosts.AssertConsistent(host);
    }

    [Test]
    public void Pages_shared_after_fork_keep_the_per_mapping_unmap()
    {
        using var host = SwapHosts.Create();
        var parent = host.CreateMm();
        var start = parent.Mmap(2 * SwapHosts.Page, Protection.Read | Protection.Write);
        WritePattern(parent, start, 2, seed: 5);
        var child = parent.Fork();
        var recorder = Record(parent);

        // MADV_PAGEOUT skips shared pages (as Linux); reclaim takes them (the second pass finds them unreferenced).
        Assert.That(host.Reclaim.ReclaimCgroup(host.Reclaim.Root, 64), Is.EqualTo(2));

        Assert.That(Timeline(recorder, parent), Does.EndWith("start:Clear pte flush pte end start:Clear pte flush pte end free"), "each shared page is unmapped from each process inside its own one-page range");
        Assert.That(recorder.Events.Count(e => e.Kind is NotifierTraceKind.InvalidateRangeStart && e.MmId == parent.Id && e.End - e.Start == SwapHosts.Page), Is.EqualTo(2));
        Assert.That(CorruptPages(parent, start, 2, seed: 5), Is.Empty);
        Assert.That(CorruptPages(child, start, 2, seed: 5), Is.Empty);
        child.Exit();
        SwapHosts.AssertConsistent(host);
    }

    [Test]
    public void Each_start_of_a_swap_out_comes_before_the_frame_is_freed_and_the_write_happens_between_end_and_free()
    {
        using var host = SwapHosts.Create();
        var mm = host.CreateMm();
        var start = mm.Mmap(SwapHosts.Page, Protection.Read | Protection.Write);
        WritePattern(mm, start, 1, seed: 2);
        var recorder = Record(mm);
        var area = host.Reclaim.Area!;
        var writtenAtEnd = -1L;
        mm.Notifiers.Register(new EndProbe(() => writtenAtEnd = area.GetStats().Pswpout));

        mm.Madvise(start, SwapHosts.Page, Advice.PageOut);

        Assert.That(writtenAtEnd, Is.Zero, "the page is written after the end, not inside the range");
        Assert.That(area.GetStats().Pswpout, Is.EqualTo(1));
        Assert.That(Timeline(recorder, mm), Does.EndWith("end free"));
    }

    [Test]
    public void Swap_in_maps_the_page_with_no_notifier()
    {
        using var host = SwapHosts.Create();
        var mm = host.CreateMm();
        var start = mm.Mmap(SwapHosts.Page, Protection.Read | Protection.Write);
        WritePattern(mm, start, 1, seed: 3);
        mm.Madvise(start, SwapHosts.Page, Advice.PageOut);
        var recorder = Record(mm);

        Assert.That(CorruptPages(mm, start, 1, seed: 3), Is.Empty);

        Assert.That(Timeline(recorder, mm), Is.EqualTo("pte"), "one PTE change (swap entry → present), no start, end or flush");
    }

    private sealed class EndProbe(Action atEnd) : IMmuNotifier
    {
        public void InvalidateRangeEnd(in NotifierRange range) => atEnd();
    }
}
