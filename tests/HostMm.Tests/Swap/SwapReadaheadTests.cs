using Hypervisor.HostMm.Swap;

namespace Hypervisor.HostMm.Tests.Swap;

/// <summary>Linux's cluster-readahead window rules (<c>__swapin_nr_pages</c>) and the block it reads.</summary>
public sealed class SwapReadaheadTests
{
    [TestCase(100UL, 0L, 0, 1, TestName = "no hits, not adjacent: the page alone")]
    [TestCase(51UL, 0L, 0, 2, TestName = "no hits, next slot: 2")]
    [TestCase(49UL, 0L, 0, 2, TestName = "no hits, previous slot: 2")]
    [TestCase(100UL, 1L, 0, 4, TestName = "1 hit: 3 rounds up to 4")]
    [TestCase(100UL, 2L, 0, 4, TestName = "2 hits: 4")]
    [TestCase(100UL, 3L, 0, 8, TestName = "3 hits: 5 rounds up to 8")]
    [TestCase(100UL, 30L, 0, 8, TestName = "many hits: capped at 2^page_cluster")]
    [TestCase(100UL, 0L, 8, 4, TestName = "no hits after a window of 8: never below half, 4")]
    [TestCase(100UL, 0L, 2, 1, TestName = "no hits after a window of 2: half is 1")]
    public void Window_FollowsLinux(ulong offset, long hits, int previousWindow, int expected) =>
        Assert.That(SwapReadahead.Window(prevOffset: 50, offset, hits, maxPages: 8, previousWindow), Is.EqualTo(expected));

    [Test]
    public void SequentialFaultsWithHits_GrowToTheCap_ThenRandomFaultsShrinkByHalves()
    {
        var ra = new SwapReadahead();
        Assert.That(ra.NextWindow(1000), Is.EqualTo(1), "first fault: no history");
        Assert.That(ra.NextWindow(1001), Is.EqualTo(2), "adjacent");
        ra.RecordHit();
        Assert.That(ra.NextWindow(1002), Is.EqualTo(4));
        ra.RecordHit();
        ra.RecordHit();
        ra.RecordHit();
        Assert.That(ra.NextWindow(1006), Is.EqualTo(8));
        Assert.That(ra.NextWindow(5000), Is.EqualTo(4), "half of 8");
        Assert.That(ra.NextWindow(9000), Is.EqualTo(2));
        Assert.That(ra.NextWindow(13000), Is.EqualTo(1));
        Assert.That(ra.Hits, Is.EqualTo(4));
    }

    [Test]
    public void HitsDoNotMoveThePreviousOffset()
    {
        var ra = new SwapReadahead();
        ra.NextWindow(100);
        ra.RecordHit();
        ra.NextWindow(400); // with a hit: offset 400 is not remembered
        Assert.That(ra.NextWindow(101), Is.EqualTo(2), "101 is adjacent to 100, the last fault without hits");
    }

    [Test]
    public void PageClusterZero_ReadsOnlyTheTarget()
    {
        var ra = new SwapReadahead(pageCluster: 0);
        ra.RecordHit();
        Span<ulong> slots = stackalloc ulong[1];
        Assert.That(ra.Plan(77, 1000, slots), Is.EqualTo(1));
        Assert.That(slots[0], Is.EqualTo(77UL));
    }

    [Test]
    public void Plan_ReadsTheAlignedBlock_TargetLast()
    {
        var ra = new SwapReadahead();
        for (var i = 0; i < 6; i++)
        {
            ra.RecordHit(); // window 8
        }

        var slots = new ulong[8];
        var n = ra.Plan(21, 1000, slots);
        Assert.That(slots.Take(n), Is.EqualTo(new ulong[] { 16, 17, 18, 19, 20, 22, 23, 21 }));
    }

    [Test]
    public void Plan_SkipsTheHeaderSlot_AndStopsAtTheEndOfTheDevice()
    {
        var ra = new SwapReadahead();
        var slots = new ulong[8];
        for (var i = 0; i < 6; i++)
        {
            ra.RecordHit();
        }

        var n = ra.Plan(3, 1000, slots);
        Assert.That(slots.Take(n), Is.EqualTo(new ulong[] { 1, 2, 4, 5, 6, 7, 3 }));

        for (var i = 0; i < 6; i++)
        {
            ra.RecordHit();
        }

        n = ra.Plan(997, 998, slots);
        Assert.That(slots.Take(n), Is.EqualTo(new ulong[] { 992, 993, 994, 995, 996, 997 }));
    }

    [TestCase(-1)]
    [TestCase(10)]
    public void PageClusterOutOfRange_IsRefused(int pageCluster)
    {
        var ex = Assert.Throws<SwapConfigurationException>(() => new SwapReadahead(pageCluster))!;
        Assert.That(ex.Rule, Is.EqualTo(SwapRule.PageClusterOutOfRange));
        Assert.That(ex.Message, Does.Contain($"page_cluster {pageCluster}"));
    }

    [Test]
    public void Plan_RefusesTheHeaderSlotAndAShortBuffer()
    {
        var ra = new SwapReadahead();
        Assert.That(() => ra.Plan(0, 100, new ulong[8]), Throws.TypeOf<ArgumentOutOfRangeException>());
        Assert.That(() => ra.Plan(5, 100, new ulong[4]), Throws.ArgumentException);
    }
}
