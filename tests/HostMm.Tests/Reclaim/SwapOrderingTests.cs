using Hypervisor.Notifier;
using Hypervisor.HostMm.Vmas;
using Hypervisor.Notifier.Tracing;
using static Hypervisor.HostMm.Tests.Processes.TestHosts;
using static Hypervisor.HostMm.Tests.Reclaim.SwapHosts;

namespace Hypervisor.HostMm.Tests.Reclaim;

/// <summary>
/// Swap-out and swap-in against reference/mmu-notifier.md §3: <c>try_to_unmap_one</c> is start (Clear, one page) →
/// under the page-table lock the PTE is cleared, the TLB flushed and the swap entry installed → end; the page is written
/// and freed only after the end. Swap-in only adds a mapping: no notifier at all.
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

        Assert.That(Timeline(recorder, mm), Is.EqualTo("start:Clear pte flush pte end start:Clear pte flush pte end free"), "each page is unmapped inside its own start/end; the batch's pages are written as one run and freed (two frees, counted below) after every end");
        var events = recorder.Events.Where(e => e.Kind is NotifierTraceKind.HostPteChange && e.MmId == mm.Id).ToList();
        Assert.That(events, Has.Count.EqualTo(4), "per page: present → none, then none → swap entry");
        Assert.That(recorder.Count(NotifierTraceKind.FrameFree), Is.EqualTo(2));
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
