using Hypervisor.HostMm.Huge;
using Hypervisor.HostMm.PageTables;
using Hypervisor.Notifier;
using Hypervisor.Notifier.Tracing;
using static Hypervisor.HostMm.Tests.Thp.ThpHosts;

namespace Hypervisor.HostMm.Tests.Thp;

/// <summary>
/// khugepaged: ranges of small pages collapse into a huge page in <c>collapse_huge_page</c>'s order (§3: start (Clear,
/// 2 MiB) → PD entry cleared and flushed → end → copy → huge leaf → small pages freed), under Linux's
/// max_ptes_none rule and only when something referenced the range (an accessed bit or a secondary MMU's test_young).
/// </summary>
public class KhugepagedTests
{
    private const int Frames = 512;

    [Test]
    public void A_populated_range_collapses_in_order_with_its_data_and_every_small_page_freed_after_the_end()
    {
        using var host = ThpHosts.Create(ThpMode.Madvise);
        var mm = host.CreateMm();
        var start = MapAligned(mm, 1);
        Stamp(mm, start, Frames, seed: 1);
        Assert.That(mm.PageTable.IsHugeMapped(start), Is.False, "not advised yet: small pages");
        mm.Madvise(start, HugeBytes, Advice.HugePage);
        var recorder = Processes.TestHosts.Record(mm);

        Assert.That(host.Khugepaged.Step(4096), Is.EqualTo(1));

        Assert.That(Processes.TestHosts.Timeline(recorder, mm), Is.EqualTo("start:Clear pte flush end pte free"));
        var end = recorder.Events.Single(e => e.Kind == NotifierTraceKind.InvalidateRangeEnd).Sequence;
        Assert.That(recorder.Events.Where(e => e.Kind == NotifierTraceKind.FrameFree).All(e => e.Sequence > end), Is.True);
        Assert.That(recorder.Count(NotifierTraceKind.FrameFree), Is.EqualTo(Frames + 1), "512 small pages and the PTE table");
        var leaf = mm.PageTable.ReadPmd(start);
        Assert.That(HostPageTable.IsHugeLeaf(leaf.Value) && leaf.IsWritable, Is.True);
        Assert.That(Unstamped(mm, start, Frames, seed: 1), Is.Empty);
        Assert.That(mm.Stats.RssPages, Is.EqualTo(Frames));
        Assert.That(host.Khugepaged.Stats.PagesCollapsed, Is.EqualTo(1));
        AssertConsistent(host);
    }

    [Test]
    public void Max_ptes_none_decides_whether_a_sparse_range_collapses()
    {
        using var host = ThpHosts.Create(ThpMode.Madvise);
        var mm = host.CreateMm();
        var start = MapAligned(mm, 1);
        mm.Write(start + (3 * Page), new byte[] { 7 });
        mm.Madvise(start, HugeBytes, Advice.HugePage);

        host.Khugepaged.MaxPtesNone = 0;
        Assert.That(host.Khugepaged.Step(4096), Is.Zero);
        Assert.That(host.Khugepaged.Stats.Skipped[CollapseResult.ExceedNone], Is.EqualTo(1));

        host.Khugepaged.MaxPtesNone = 511;
        Assert.That(host.Khugepaged.Step(4096), Is.EqualTo(1), "one resident page is enough by default");
        var bytes = new byte[1];
        mm.Read(start + (3 * Page), bytes);
        Assert.That(bytes[0], Is.EqualTo(7));
        mm.Read(start + (4 * Page), bytes);
        Assert.That(bytes[0], Is.Zero, "the never-touched pages are zero in the huge page");
        Assert.That(mm.Stats.RssPages, Is.EqualTo(Frames));
        Assert.Throws<ArgumentOutOfRangeException>(() => host.Khugepaged.MaxPtesNone = 512);
        AssertConsistent(host);
    }

    [Test]
    public void An_unreferenced_range_waits_until_a_secondary_mmu_says_it_is_young()
    {
        using var host = ThpHosts.Create(ThpMode.Madvise);
        var mm = host.CreateMm();
        var start = MapAligned(mm, 1);
        Stamp(mm, start, 8, seed: 3);
        mm.Madvise(start, HugeBytes, Advice.Cold); // clears the accessed bits and the referenced flags, no notifier
        mm.Madvise(start, HugeBytes, Advice.HugePage);

        Assert.That(host.Khugepaged.Step(4096), Is.Zero);
        Assert.That(host.Khugepaged.Stats.Skipped[CollapseResult.LackReferenced], Is.EqualTo(1));

        var secondary = new YoungSecondary();
        mm.Notifiers.Register(secondary);
        Assert.That(host.Khugepaged.Step(4096), Is.EqualTo(1), "test_young on the chain counts as a reference");
        Assert.That(secondary.TestYoungCalls, Is.GreaterThan(0));
        Assert.That(Unstamped(mm, start, 8, seed: 3), Is.Empty);
        AssertConsistent(host);
    }

    [Test]
    public void Shared_or_locked_pages_keep_the_range_small()
    {
        using var thp = ThpHosts.Create(ThpMode.Madvise);
        var parent = thp.CreateMm();
        var start = MapAligned(parent, 1);
        Stamp(parent, start, 4, seed: 4);
        parent.Madvise(start, HugeBytes, Advice.HugePage);
        var child = parent.Fork();

        Assert.That(thp.Khugepaged.Step(4096), Is.Zero);
        Assert.That(thp.Khugepaged.Stats.Skipped[CollapseResult.Shared], Is.GreaterThanOrEqualTo(1));
        child.Exit();

        var pfn = parent.PageTable.Read(start).Pfn;
        thp.Memory.SetFlags(pfn, HostMm.Frames.FrameFlags.Locked);
        Assert.That(thp.Khugepaged.Step(4096), Is.Zero);
        Assert.That(thp.Khugepaged.Stats.Skipped[CollapseResult.Busy], Is.EqualTo(1));
        thp.Memory.ClearFlags(pfn, HostMm.Frames.FrameFlags.Locked);
        Assert.That(thp.Khugepaged.Step(4096), Is.EqualTo(1));
        Assert.That(Unstamped(parent, start, 4, seed: 4), Is.Empty);
        AssertConsistent(thp);
    }

    [Test]
    public void Never_mode_collapses_nothing_and_the_scan_resumes_where_its_budget_ran_out()
    {
        using var never = ThpHosts.Create(ThpMode.Never);
        var a = never.CreateMm();
        var startA = MapAligned(a, 1);
        Stamp(a, startA, 4, seed: 5);
        Assert.That(never.Khugepaged.Step(4096), Is.Zero);
        Assert.That(never.Khugepaged.Stats.RangesScanned, Is.Zero);

        using var host = ThpHosts.Create(ThpMode.Madvise);
        var mm = host.CreateMm();
        var start = MapAligned(mm, 3);
        for (var i = 0UL; i < 3; i++)
        {
            mm.Write(start + (i * HugeBytes), new byte[] { 1 });
        }

        mm.Madvise(start, 3 * HugeBytes, Advice.HugePage);
        Assert.That(host.Khugepaged.Step(Frames), Is.EqualTo(1), "a budget of one range collapses one");
        Assert.That(host.Khugepaged.Step(2 * Frames), Is.EqualTo(2), "the next step goes on from there");
        Assert.That(mm.ThpStats.HugeLeaves, Is.EqualTo(3));
        AssertConsistent(host);
    }

    private sealed class YoungSecondary : IMmuNotifier
    {
        private int _calls;

        public int TestYoungCalls => Volatile.Read(ref _calls);

        public bool InvalidateRangeStart(in NotifierRange range) => true;

        public void InvalidateRangeEnd(in NotifierRange range)
        {
        }

        public bool TestYoung(IMm mm, Hva address)
        {
            Interlocked.Increment(ref _calls);
            return true;
        }
    }
}
