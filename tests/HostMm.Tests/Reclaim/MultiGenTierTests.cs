using Hypervisor.HostMm.Frames;
using Hypervisor.HostMm.Reclaim;
using Hypervisor.HostMm.Swap;
using Hypervisor.HostMm.Vmas;
using Hypervisor.Notifier;
using static Hypervisor.HostMm.Tests.Reclaim.SwapHosts;

namespace Hypervisor.HostMm.Tests.Reclaim;

/// <summary>
/// The multi-gen LRU's tiers and refault controller: accesses through get-user-pages counted per page
/// (<see cref="LruTiers"/>), shadows carrying the oldest generation and the access count, refaults counted per tier
/// and under Linux's workingset counters, the controller's arithmetic (<see cref="RefaultController"/>), and eviction
/// protecting a tier that refaults more than tier 0 while a scan-once set is evicted.
/// </summary>
public class MultiGenTierTests
{
    private static readonly ReclaimOptions MultiGen = new() { Policy = LruPolicy.MultiGen };

    [Test]
    public void A_refaulting_tier_is_protected_and_stays_resident_while_a_scan_once_set_streams_through()
    {
        // A hot set used three times a round (tier 2 through get-user-pages), and a stream of pages written once and never
        // again (tier 0) that is 3.5 times the hot set each round, under a limit of 4 hot sets. Without tiers the hot set
        // leaves with the stream: half of it is swapped out at the start of every round.
        using var host = Create(reclaim: MultiGen, swapMegabytes: 128);
        const int hot = 512;
        const int stream = 1792;
        const int rounds = 12;
        var mm = LimitedProcess(host, limitPages: 4 * hot);
        var hotStart = mm.Mmap(hot * Page, Protection.Read | Protection.Write);
        var streamStart = mm.Mmap(rounds * stream * Page, Protection.Read | Protection.Write);
        WritePattern(mm, hotStart, hot, seed: 1);
        var lruvec = host.Reclaim.LruvecOf(ref host.Memory.Frame(mm.PageTable.Read(hotStart).Pfn));
        var buffer = new byte[64];
        var swappedLater = 0;
        var protectedTier = false;
        for (var round = 0; round < rounds; round++)
        {
            if (round >= rounds / 2)
            {
                swappedLater += SwappedPages(mm, hotStart, hot);
            }

            ReadThrice(mm, hotStart, hot);
            for (var page = 0; page < stream; page++)
            {
                mm.Write(streamStart + ((ulong)((round * stream) + page) * Page), buffer);
            }

            protectedTier |= lruvec.Tiers.TierIndex() < LruTiers.Count - 1;
        }

        var stats = host.Reclaim.Stats;
        Assert.Multiple(() =>
        {
            Assert.That(protectedTier, Is.True, "the hot set's refaults turned protection on for its tier");
            Assert.That(stats.MglruTierProtections, Is.GreaterThan(hot), "eviction moved hot pages up instead of evicting them");
            Assert.That(swappedLater, Is.LessThan(hot * (rounds / 2) / 4), "the hot set stayed resident in the later rounds");
            Assert.That(SwappedPages(mm, streamStart, (rounds - 1) * stream), Is.GreaterThan((rounds - 2) * stream), "the scan-once pages were evicted");
        });
        Assert.That(CorruptPages(mm, hotStart, hot, seed: 1), Is.Empty);
        AssertConsistent(host);
    }

    [Test]
    public void Accesses_through_get_user_pages_count_up_the_tiers_under_the_multi_gen_lru_only()
    {
        using var host = Create(reclaim: MultiGen);
        var mm = LimitedProcess(host, limitPages: 1024);
        var start = mm.Mmap(Page, Protection.Read | Protection.Write);
        mm.Write(start, new byte[8]); // the fault, then get-user-pages' touch: the first access
        var buffer = new byte[8];
        var seen = new List<(int Refs, int Tier, bool Saturated)>();
        for (var access = 1; access <= 5; access++)
        {
            var flags = host.Memory.Frame(mm.PageTable.Read(start).Pfn).Flags;
            seen.Add((LruTiers.Refs(flags), LruTiers.TierOf(flags), LruTiers.IsSaturated(flags)));
            mm.Read(start, buffer);
        }

        Assert.That(seen, Is.EqualTo(new[] { (1, 0, false), (2, 1, false), (3, 2, false), (4, 2, false), (4, 3, true) }),
            "1 access: tier 0; 2: tier 1; 3–4: tier 2; a fifth with the counter full marks the workingset (top tier, saturated)");

        using var classic = Create();
        var other = LimitedProcess(classic, limitPages: 1024);
        var page = other.Mmap(Page, Protection.Read | Protection.Write);
        other.Write(page, new byte[8]);
        other.Read(page, buffer);
        Assert.That(LruTiers.Refs(classic.Memory.Frame(other.PageTable.Read(page).Pfn).Flags), Is.Zero, "the classic LRU counts no references");
    }

    [TestCase(0, false, 0)]
    [TestCase(1, false, 0)]
    [TestCase(2, false, 1)]
    [TestCase(3, false, 2)]
    [TestCase(4, false, 2)]
    [TestCase(0, true, 3)]
    [TestCase(2, true, 3)]
    public void A_tier_is_the_ceiling_log2_of_the_accesses_and_the_top_one_for_the_workingset(int refs, bool workingset, int tier) =>
        Assert.That(LruTiers.TierFromRefs(refs, workingset), Is.EqualTo(tier));

    [Test]
    public void More_accesses_than_a_page_can_record_are_refused_naming_the_value()
    {
        var ex = Assert.Throws<ArgumentOutOfRangeException>(() => LruTiers.TierFromRefs(5, workingset: false));
        Assert.That(ex!.Message, Does.Contain("0 to 4"));
        Assert.That(ex.ActualValue, Is.EqualTo(5));
    }

    [Test]
    public void A_generational_shadow_carries_the_lruvec_the_oldest_generation_the_accesses_and_the_workingset_mark()
    {
        var shadow = ShadowEntry.MakeGenerational(lruvec: 5, minSeq: 1234, refs: 3, workingset: true);
        Assert.Multiple(() =>
        {
            Assert.That(shadow & 3, Is.EqualTo(2UL), "bit 1 set, bit 0 clear, as every shadow");
            Assert.That(ShadowEntry.LruvecOf(shadow), Is.EqualTo(5));
            Assert.That(ShadowEntry.SequenceOf(shadow), Is.EqualTo(1234));
            Assert.That(ShadowEntry.RefsOf(shadow), Is.EqualTo(3));
            Assert.That(ShadowEntry.WasWorkingset(shadow), Is.True);
            Assert.That(ShadowEntry.RefsOf(ShadowEntry.MakeGenerational(0, 7, refs: 0, workingset: false)), Is.EqualTo(1), "no access records as one");
            Assert.That(ShadowEntry.IsRecentGeneration(ShadowEntry.MakeGenerational(0, 10, 1, false), maxSeq: 13, generations: 4), Is.True);
            Assert.That(ShadowEntry.IsRecentGeneration(ShadowEntry.MakeGenerational(0, 10, 1, false), maxSeq: 14, generations: 4), Is.False);
        });
    }

    [Test]
    public void The_controller_protects_a_tier_only_past_the_minimum_refaults_and_above_one_and_a_half_times_tier_zeros_rate()
    {
        // Hand-computed: protection is off while pv.refaulted × (sp.total + 64) × 2 ≤ (sp.refaulted + 1) × pv.total × 3.
        var setPoint = new ControlPosition(Refaulted: 99, Total: 136, Gain: RefaultController.SetPointGain);
        Assert.Multiple(() =>
        {
            // 150 × 200 × 2 = 60,000 against 100 × 200 × 3 = 60,000: equal rates after the gains, no protection.
            Assert.That(RefaultController.PositiveError(setPoint, new ControlPosition(150, 200, RefaultController.ProcessGain)), Is.True);

            // 150 × 200 × 2 = 60,000 against 100 × 199 × 3 = 59,700: just above, protection.
            Assert.That(RefaultController.PositiveError(setPoint, new ControlPosition(150, 199, RefaultController.ProcessGain)), Is.False);

            // 63 refaults are too few to act on, whatever the rate.
            Assert.That(RefaultController.PositiveError(new ControlPosition(0, 1000, 2), new ControlPosition(63, 63, 3)), Is.True);

            // 64 × 1,064 × 2 = 136,192 against 1 × 128 × 3 = 384: protection.
            Assert.That(RefaultController.PositiveError(new ControlPosition(0, 1000, 2), new ControlPosition(64, 128, 3)), Is.False);
        });
    }

    [Test]
    public void The_tier_index_stops_at_the_first_tier_that_refaults_too_much()
    {
        static RefaultController With(params (int Tier, int Refaulted, int Evicted)[] counts)
        {
            var controller = new RefaultController();
            foreach (var (tier, refaulted, evicted) in counts)
            {
                for (var i = 0; i < refaulted; i++)
                {
                    controller.CountRefaulted(tier);
                }

                for (var i = 0; i < evicted; i++)
                {
                    controller.CountEvicted(tier);
                }
            }

            return controller;
        }

        Assert.Multiple(() =>
        {
            Assert.That(new RefaultController().TierIndex(), Is.EqualTo(3), "no refaults: every tier may be evicted");
            Assert.That(With((0, 0, 1000), (1, 64, 128)).TierIndex(), Is.EqualTo(0), "tier 1 refaults: tiers 1–3 protected");
            Assert.That(With((0, 0, 1000), (1, 10, 100), (2, 100, 100)).TierIndex(), Is.EqualTo(1), "tier 1 is fine, tier 2 is not");
            Assert.That(With((0, 0, 1000), (1, 10, 100), (2, 100, 100), (3, 100, 100)).TierIndex(), Is.EqualTo(1), "the search stops at tier 2");
            Assert.That(With((0, 0, 1000), (3, 100, 100)).TierIndex(), Is.EqualTo(2), "only the workingset tier refaults");
            Assert.That(With((0, 500, 1000), (3, 100, 100)).TierIndex(), Is.EqualTo(2), "100 × 1,064 × 2 = 212,800 > 501 × 100 × 3 = 150,300");
            Assert.That(With((0, 500, 1000), (3, 100, 200)).TierIndex(), Is.EqualTo(3), "tier 0 refaults about as often: 212,800 ≤ 501 × 200 × 3 = 300,600");
        });
    }

    [Test]
    public void Retiring_the_oldest_generation_halves_the_averages_into_the_next()
    {
        var controller = new RefaultController();
        for (var i = 0; i < 10; i++)
        {
            controller.CountRefaulted(2);
        }

        for (var i = 0; i < 30; i++)
        {
            controller.CountEvicted(2);
        }

        for (var i = 0; i < 6; i++)
        {
            controller.CountProtected(2);
        }

        Assert.That(controller.Position(2, 1), Is.EqualTo(new ControlPosition(10, 36, 1)));
        controller.CarryOver();
        Assert.That((controller.AverageRefaulted(2), controller.AverageTotal(2), controller.Refaulted(2), controller.Evicted(2), controller.Protected(2)),
            Is.EqualTo((5L, 18L, 0L, 0L, 0L)), "(0 + 10) / 2 and (0 + 36) / 2; the counts restart");
        for (var i = 0; i < 7; i++)
        {
            controller.CountRefaulted(2);
        }

        for (var i = 0; i < 4; i++)
        {
            controller.CountEvicted(2);
        }

        controller.CarryOver();
        Assert.That(controller.Position(2, 1), Is.EqualTo(new ControlPosition(6, 11, 1)), "(5 + 7) / 2 and (18 + 4) / 2");
    }

    [Test]
    public void Refaults_are_counted_per_tier_and_as_refault_activate_and_restore_the_way_linux_counts_them_under_mglru()
    {
        using var host = Create(reclaim: MultiGen);
        var mm = LimitedProcess(host, limitPages: 1024);
        var plain = mm.Mmap(32 * Page, Protection.Read | Protection.Write);
        var used = mm.Mmap(32 * Page, Protection.Read | Protection.Write);
        WritePattern(mm, plain, 32, seed: 4);
        WritePattern(mm, used, 32, seed: 5);
        host.Reclaim.AgeCgroup(mm.Cgroup);
        host.Reclaim.AgeCgroup(mm.Cgroup);
        var buffer = new byte[8];
        for (var page = 0; page < 32; page++)
        {
            mm.Read(used + ((ulong)page * Page), buffer);
        }

        Assert.That(host.Reclaim.AgeCgroup(mm.Cgroup), Is.EqualTo(32), "the used pages are promoted: workingset from now on");
        var lruvec = host.Reclaim.LruvecOf(ref host.Memory.Frame(mm.PageTable.Read(used).Pfn));
        var before = host.Reclaim.Stats;
        mm.Madvise(plain, 32 * Page, Advice.PageOut);
        mm.Madvise(used, 32 * Page, Advice.PageOut);
        Assert.That((lruvec.Tiers.Evicted(0), lruvec.Tiers.Evicted(3)), Is.EqualTo((32L, 32L)), "evictions counted to tier 0 and the workingset tier");

        Assert.That(CorruptPages(mm, plain, 32, seed: 4), Is.Empty);
        Assert.That(CorruptPages(mm, used, 32, seed: 5), Is.Empty);
        var after = host.Reclaim.Stats;
        Assert.Multiple(() =>
        {
            Assert.That(after.WorkingsetRefaultAnon - before.WorkingsetRefaultAnon, Is.EqualTo(64), "every page read back from its shadow, read ahead or not");
            Assert.That(after.WorkingsetActivateAnon - before.WorkingsetActivateAnon, Is.EqualTo(64), "all recent, all inside a fault");
            Assert.That(after.WorkingsetRestoreAnon - before.WorkingsetRestoreAnon, Is.EqualTo(32), "only the workingset pages are restored");
            Assert.That((lruvec.Tiers.Refaulted(0), lruvec.Tiers.Refaulted(3)), Is.EqualTo((32L, 32L)));
            Assert.That(host.Memory.Frame(mm.PageTable.Read(used).Pfn).Has(FrameFlags.Workingset), Is.True, "the mark came back");
        });
        AssertConsistent(host);
    }

    [Test]
    public void A_refault_more_than_four_generations_after_its_eviction_is_counted_but_not_recent()
    {
        using var host = Create(reclaim: MultiGen);
        var mm = LimitedProcess(host, limitPages: 1024);
        var start = mm.Mmap(16 * Page, Protection.Read | Protection.Write);
        WritePattern(mm, start, 16, seed: 6);
        var lruvec = host.Reclaim.LruvecOf(ref host.Memory.Frame(mm.PageTable.Read(start).Pfn));
        mm.Madvise(start, 16 * Page, Advice.PageOut);
        for (var aging = 0; aging < Lruvec.MaxGenerations; aging++)
        {
            host.Reclaim.AgeCgroup(mm.Cgroup);
        }

        var before = host.Reclaim.Stats;
        Assert.That(CorruptPages(mm, start, 16, seed: 6), Is.Empty);
        var after = host.Reclaim.Stats;
        Assert.Multiple(() =>
        {
            Assert.That(after.WorkingsetRefaultAnon - before.WorkingsetRefaultAnon, Is.EqualTo(16));
            Assert.That(after.WorkingsetActivateAnon - before.WorkingsetActivateAnon, Is.Zero);
            Assert.That(lruvec.Tiers.Position(0, 1).Refaulted, Is.Zero, "a stale refault teaches the controller nothing");
        });
    }

    private static void ReadThrice(Mm mm, Hva start, int pages)
    {
        var buffer = new byte[8];
        for (var pass = 0; pass < 3; pass++)
        {
            for (var page = 0; page < pages; page++)
            {
                mm.Read(start + ((ulong)page * Page), buffer);
            }
        }
    }
}
