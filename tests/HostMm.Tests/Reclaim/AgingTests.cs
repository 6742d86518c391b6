using Hypervisor.HostMm.Reclaim;
using Hypervisor.HostMm.Vmas;
using Hypervisor.Notifier;
using static Hypervisor.HostMm.Tests.Reclaim.SwapHosts;

namespace Hypervisor.HostMm.Tests.Reclaim;

/// <summary>
/// Aging: the accessed bits of the host PTEs and of the secondary MMUs decide what stays resident; the background
/// reclaimer keeps a cgroup below its limit; readahead and the workingset test are counted.
/// </summary>
public class AgingTests
{
    [Test]
    public void Pages_a_secondary_mmu_reports_young_stay_resident_only_while_its_answers_count([Values] bool secondaryAging, [Values] LruPolicy policy)
    {
        using var host = Create(reclaim: new ReclaimOptions { SecondaryAging = secondaryAging, Policy = policy });
        var mm = LimitedProcess(host, limitPages: 64);
        var start = mm.Mmap(256 * Page, Protection.Read | Protection.Write);
        var hot = new YoungRange(start, start + (16 * Page)); // a guest keeps touching these through its EPT
        mm.Notifiers.Register(hot);
        WritePattern(mm, start, 64, seed: 1);

        for (var page = 64; page < 256; page++)
        {
            mm.Write(start + ((ulong)page * Page), PageData(page, 1)); // a stream of new pages pushes the rest out
        }

        var hotResident = 16 - SwappedPages(mm, start, 16);
        Assert.That(hot.Queries, Is.GreaterThan(0), "reclaim asked the secondary MMU");
        Assert.That(host.Reclaim.Stats.SecondaryYoungHits, Is.GreaterThan(0));
        if (secondaryAging)
        {
            Assert.That(hotResident, Is.EqualTo(16), "the pages the guest uses stay in memory");
        }
        else
        {
            Assert.That(hotResident, Is.LessThan(8), "without secondary aging the host sees them unused and evicts them");
        }

        Assert.That(CorruptPages(mm, start, 256, seed: 1), Is.Empty);
        AssertConsistent(host);
    }

    [Test]
    public void Cold_pages_are_reclaimed_before_recently_used_ones([Values] LruPolicy policy)
    {
        using var host = Create(reclaim: new ReclaimOptions { Policy = policy });
        var mm = host.CreateMm();
        var start = mm.Mmap(32 * Page, Protection.Read | Protection.Write);
        WritePattern(mm, start, 32, seed: 2);

        mm.Madvise(start, 16 * Page, Advice.Cold);
        var reclaimed = host.Reclaim.ReclaimCgroup(host.Reclaim.Root, 16);

        Assert.That(reclaimed, Is.EqualTo(16));
        Assert.That(SwappedPages(mm, start, 16), Is.EqualTo(16), "the cold half went");
        Assert.That(SwappedPages(mm, start + (16 * Page), 16), Is.Zero, "the used half stayed");
        AssertConsistent(host);
    }

    [Test]
    public void The_background_reclaimer_keeps_a_cgroup_below_its_limit([Values] LruPolicy policy)
    {
        using var host = Create(reclaim: new ReclaimOptions { Policy = policy });
        var mm = LimitedProcess(host, limitPages: 256);
        var start = mm.Mmap(250 * Page, Protection.Read | Protection.Write);
        WritePattern(mm, start, 250, seed: 3);
        Assert.That(host.Reclaim.NeedsReclaim, Is.True, "6 pages of headroom is below the low margin of 32");

        var reclaimed = host.Reclaim.Step(budgetPages: 1024);

        Assert.That(reclaimed, Is.GreaterThan(0));
        Assert.That(mm.Cgroup.HeadroomPages, Is.GreaterThanOrEqualTo(64), "kswapd stops at twice the margin");
        Assert.That(host.Reclaim.NeedsReclaim, Is.False);
        Assert.That(host.Reclaim.Step(budgetPages: 1024), Is.Zero, "nothing to do now");
        Assert.That(host.Reclaim.Stats.PgstealKswapd, Is.EqualTo(reclaimed));
        Assert.That(host.Reclaim.Stats.KswapdRuns, Is.EqualTo(1));
        Assert.That(CorruptPages(mm, start, 250, seed: 3), Is.Empty);
        AssertConsistent(host);
    }

    [Test]
    public void A_sequential_swap_in_reads_ahead_and_uses_what_it_read()
    {
        using var host = Create();
        var mm = host.CreateMm();
        var start = mm.Mmap(64 * Page, Protection.Read | Protection.Write);
        WritePattern(mm, start, 64, seed: 4);
        mm.Madvise(start, 64 * Page, Advice.PageOut);

        Assert.That(CorruptPages(mm, start, 64, seed: 4), Is.Empty);

        var stats = host.Reclaim.Stats;
        Assert.That(stats.SwapRa, Is.GreaterThan(0));
        Assert.That(stats.SwapRaHit, Is.GreaterThan(0));
        Assert.That(stats.Pgmajfault, Is.LessThan(64), "read-ahead pages were minor faults");
        Assert.That(stats.Pgmajfault + stats.SwapCacheHits, Is.EqualTo(64));
        AssertConsistent(host);
    }

    [Test]
    public void A_refault_of_an_evicted_page_is_counted_by_the_workingset_test([Values] LruPolicy policy)
    {
        using var host = Create(reclaim: new ReclaimOptions { Policy = policy });
        var mm = LimitedProcess(host, limitPages: 32);
        var start = mm.Mmap(96 * Page, Protection.Read | Protection.Write);
        WritePattern(mm, start, 96, seed: 5);

        Assert.That(CorruptPages(mm, start, 96, seed: 5), Is.Empty);

        Assert.That(host.Reclaim.Stats.WorkingsetRefaultAnon, Is.GreaterThan(0));
        AssertConsistent(host);
    }

    /// <summary>A secondary MMU that reports every page of a range young each time it is asked.</summary>
    private sealed class YoungRange(Hva start, Hva end) : IMmuNotifier
    {
        public int Queries { get; private set; }

        public bool ClearFlushYoung(IMm mm, Hva from, Hva to) => Answer(from, to);

        public bool ClearYoung(IMm mm, Hva from, Hva to) => Answer(from, to);

        private bool Answer(Hva from, Hva to)
        {
            Queries++;
            return from < end && start < to;
        }
    }
}
