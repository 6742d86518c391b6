using Hypervisor.HostMm.Reclaim;
using Hypervisor.HostMm.Vmas;
using Hypervisor.Notifier;
using static Hypervisor.HostMm.Tests.Reclaim.SwapHosts;

namespace Hypervisor.HostMm.Tests.Reclaim;

/// <summary>
/// The multi-gen LRU (<see cref="LruPolicy.MultiGen"/>): the generation window, where new pages start, promotion of
/// pages found young by the aging walk and by look-around, eviction from the oldest generation, the secondary MMU's
/// <c>clear_young</c> answers (and <see cref="ReclaimOptions.SecondaryAging"/> off), and the audit of generation fields.
/// </summary>
public class MultiGenLruTests
{
    private static readonly ReclaimOptions MultiGen = new() { Policy = LruPolicy.MultiGen };

    [Test]
    public void Faulted_pages_start_in_the_youngest_generation_and_the_window_starts_at_two()
    {
        using var host = Create(reclaim: MultiGen);
        var mm = LimitedProcess(host, limitPages: 1024);
        var start = mm.Mmap(8 * Page, Protection.Read | Protection.Write);
        WritePattern(mm, start, 8, seed: 1);

        var lruvec = LruvecOfPage(host, mm, start);
        Assert.That((lruvec.MinSeq, lruvec.MaxSeq), Is.EqualTo((0L, 1L)));
        Assert.That(lruvec.GenerationCount(1), Is.EqualTo(8));
        Assert.That(GenerationOf(host, mm, start), Is.EqualTo(2), "list index (1 % 4) + 1");
        Assert.That(host.Reclaim.Stats.ActiveAnonPages, Is.EqualTo(8), "the two youngest generations count as active");
        AssertConsistent(host);
    }

    [Test]
    public void The_generation_window_never_exceeds_four_and_folds_the_oldest_into_the_next()
    {
        using var host = Create(reclaim: MultiGen);
        var mm = LimitedProcess(host, limitPages: 1024);
        var start = mm.Mmap(16 * Page, Protection.Read | Protection.Write);
        WritePattern(mm, start, 16, seed: 2);
        var lruvec = LruvecOfPage(host, mm, start);

        Assert.That(host.Reclaim.AgeCgroup(mm.Cgroup), Is.Zero, "a fault's accessed bit does not promote a page out of the generation the fault put it in");
        for (var aging = 0; aging < 6; aging++)
        {
            Assert.That(host.Reclaim.AgeCgroup(mm.Cgroup), Is.Zero, "nothing was touched since");
            Assert.That(lruvec.Generations, Is.InRange(Lruvec.MinGenerations, Lruvec.MaxGenerations));
            AssertConsistent(host);
        }

        Assert.That(lruvec.Generations, Is.EqualTo(Lruvec.MaxGenerations));
        Assert.That(lruvec.GenerationCount(lruvec.MinSeq), Is.EqualTo(16), "untouched pages were folded down into the oldest");
        Assert.That(GenerationOf(host, mm, start), Is.EqualTo((int)(lruvec.MinSeq % 4) + 1));
        Assert.That(host.Reclaim.Stats.MglruAgings, Is.EqualTo(7 * host.Memory.NodeCount), "one per lruvec (node) of the cgroup per call");
    }

    [Test]
    public void Aging_promotes_exactly_the_pages_touched_since_the_last_aging()
    {
        using var host = Create(reclaim: MultiGen);
        var mm = LimitedProcess(host, limitPages: 1024);
        var start = mm.Mmap(64 * Page, Protection.Read | Protection.Write);
        WritePattern(mm, start, 64, seed: 3);
        host.Reclaim.AgeCgroup(mm.Cgroup);
        host.Reclaim.AgeCgroup(mm.Cgroup);
        var before = host.Reclaim.Stats.MglruWalkPromotions;

        var buffer = new byte[8];
        for (var page = 0; page < 16; page++)
        {
            mm.Read(start + ((ulong)page * 4 * Page), buffer); // every fourth page
        }

        Assert.That(host.Reclaim.AgeCgroup(mm.Cgroup), Is.EqualTo(16));
        var lruvec = LruvecOfPage(host, mm, start);
        Assert.That(lruvec.GenerationCount(lruvec.MaxSeq), Is.EqualTo(16));
        for (var page = 0; page < 64; page++)
        {
            var young = GenerationOf(host, mm, start + ((ulong)page * Page)) == (int)(lruvec.MaxSeq % 4) + 1;
            Assert.That(young, Is.EqualTo(page % 4 == 0), $"page {page}");
        }

        Assert.That(host.Reclaim.Stats.MglruWalkPromotions - before, Is.EqualTo(16));
        AssertConsistent(host);
    }

    [Test]
    public void Reclaim_evicts_the_oldest_generation_and_keeps_the_hot_set()
    {
        using var host = Create(reclaim: MultiGen);
        var mm = LimitedProcess(host, limitPages: 64);
        var start = mm.Mmap(256 * Page, Protection.Read | Protection.Write);
        var buffer = new byte[8];
        for (var page = 16; page < 256; page++)
        {
            mm.Write(start + ((ulong)page * Page), PageData(page, 4)); // a stream of cold pages
            if (page % 4 == 0)
            {
                for (var hot = 0; hot < 16; hot++)
                {
                    if (page == 16)
                    {
                        mm.Write(start + ((ulong)hot * Page), PageData(hot, 4));
                    }
                    else
                    {
                        mm.Read(start + ((ulong)hot * Page), buffer);
                    }
                }
            }
        }

        Assert.That(SwappedPages(mm, start, 16), Is.Zero, "the hot set stayed resident");
        Assert.That(SwappedPages(mm, start + (16 * Page), 240), Is.GreaterThan(150), "the stream went to swap");
        var stats = host.Reclaim.Stats;
        Assert.That(stats.MglruAgings, Is.GreaterThan(0));
        Assert.That(stats.Pgsteal, Is.GreaterThan(150));
        Assert.That(CorruptPages(mm, start, 256, seed: 4), Is.Empty);
        AssertConsistent(host);
    }

    [TestCase(true)]
    [TestCase(false)]
    public void A_page_only_a_secondary_mmu_uses_stays_resident_only_while_its_answers_count(bool secondaryAging)
    {
        using var host = Create(reclaim: MultiGen with { SecondaryAging = secondaryAging });
        var mm = LimitedProcess(host, limitPages: 64);
        var start = mm.Mmap(256 * Page, Protection.Read | Protection.Write);
        var guest = new YoungRange(start, start + (16 * Page));
        mm.Notifiers.Register(guest);
        WritePattern(mm, start, 256, seed: 5); // the host touches the guest's pages only once, when it faults them in

        var hotResident = 16 - SwappedPages(mm, start, 16);
        Assert.That(guest.ClearYoungCalls, Is.GreaterThan(0), "the walk and the reverse map asked with clear_young");
        Assert.That(guest.ClearFlushYoungCalls, Is.Zero, "the multi-gen LRU never asks for a secondary flush");
        Assert.That(host.Reclaim.Stats.SecondaryYoungHits, Is.GreaterThan(0));
        if (secondaryAging)
        {
            Assert.That(hotResident, Is.EqualTo(16), "guest-only accesses count: the pages stay in memory");
            var stats = host.Reclaim.Stats;
            Assert.That(stats.MglruWalkPromotions + stats.Pgactivate, Is.GreaterThan(0), "promoted by the walk or by eviction's reverse-map check");
        }
        else
        {
            Assert.That(hotResident, Is.LessThan(8), "without secondary aging the host sees them unused and evicts them");
        }

        Assert.That(CorruptPages(mm, start, 256, seed: 5), Is.Empty);
        AssertConsistent(host);
    }

    [Test]
    public void Look_around_promotes_the_young_neighbours_of_a_young_page_found_by_eviction()
    {
        using var host = Create(reclaim: MultiGen);
        var mm = LimitedProcess(host, limitPages: 1024);
        var start = mm.Mmap(64 * Page, Protection.Read | Protection.Write, MmapFlags.Fixed, new Hva(0x4000_0000)); // one PTE table
        WritePattern(mm, start, 64, seed: 6);
        var lruvec = LruvecOfPage(host, mm, start);
        for (var aging = 0; aging < 3; aging++)
        {
            host.Reclaim.AgeCgroup(mm.Cgroup); // touched only at fault: all 64 pages stay behind, accessed bits clear
        }

        Assert.That((lruvec.Generations, lruvec.GenerationCount(lruvec.MinSeq)), Is.EqualTo((4, 64L)), "all in the oldest of four generations");
        var buffer = new byte[8];
        for (var page = 30; page < 46; page++)
        {
            mm.Read(start + ((ulong)page * Page), buffer);
        }

        // Eviction isolates the oldest generation's tail — pages 0..31 — without aging (four generations exist); pages
        // 30 and 31 are young, and the look-around from page 30 finds 32..45 young on the list.
        var reclaimed = host.Reclaim.ReclaimCgroup(mm.Cgroup, 8);

        Assert.That(reclaimed, Is.EqualTo(30), "the whole batch's cold pages went");
        Assert.That(host.Reclaim.Stats.MglruAgings, Is.EqualTo(3 * host.Memory.NodeCount), "eviction did not need to age");
        Assert.That(host.Reclaim.Stats.MglruLookAroundPromotions, Is.EqualTo(14));
        var youngest = (int)(lruvec.MaxSeq % 4) + 1;
        for (var page = 30; page < 46; page++)
        {
            Assert.That(GenerationOf(host, mm, start + ((ulong)page * Page)), Is.EqualTo(youngest), $"page {page}");
        }

        Assert.That(GenerationOf(host, mm, start + (46 * Page)), Is.Not.EqualTo(youngest), "an untouched neighbour stays old");
        Assert.That(SwappedPages(mm, start, 30), Is.EqualTo(30));
        Assert.That(CorruptPages(mm, start, 64, seed: 6), Is.Empty);
        AssertConsistent(host);
    }

    [TestCase(false)]
    [TestCase(true)]
    public void A_hot_set_survives_a_stream_of_cold_pages_about_as_well_as_under_the_classic_lru(bool guestOnly)
    {
        // 128 hot pages used every round and 32 new cold pages per round in a cgroup of 256 pages: the hot set fits with
        // room to spare, so a policy that sees which pages are used keeps it resident. Before the aging walk stopped
        // promoting pages touched only at fault, the multi-gen LRU swapped hot pages in on every round (1,920 swap-ins
        // against classic's 128).
        var classic = HotColdSwapIns(LruPolicy.Classic, guestOnly);
        var multiGen = HotColdSwapIns(LruPolicy.MultiGen, guestOnly);
        TestContext.Out.WriteLine($"hot-set swap-ins over {HotColdRounds} rounds{(guestOnly ? ", guest-only use" : "")}: classic {classic}, multi-gen {multiGen}");

        Assert.That(classic, Is.LessThan(HotColdRounds * HotColdHotPages / 4), "the classic LRU keeps most of the hot set");
        Assert.That(multiGen, Is.LessThanOrEqualTo((2 * classic) + HotColdHotPages), $"multi-gen {multiGen} hot-set swap-ins against classic {classic}");
    }

    [Test]
    public void The_auditor_names_a_frame_whose_generation_field_disagrees_with_its_list()
    {
        using var host = Create(reclaim: MultiGen);
        var mm = LimitedProcess(host, limitPages: 1024);
        var start = mm.Mmap(4 * Page, Protection.Read | Protection.Write);
        WritePattern(mm, start, 4, seed: 7);
        AssertConsistent(host);
        var pfn = mm.PageTable.Read(start + Page).Pfn;
        ref var frame = ref host.Memory.Frame(pfn);
        var good = frame.Generation;

        frame.SetGeneration(good % 4 + 1);
        var violations = HostMmAuditor.Check(host);
        frame.SetGeneration(good);

        Assert.That(violations, Has.Some.Contains($"frame {pfn.Value} on the generation list {good - 1} has generation field {good % 4 + 1}, expected {good}"));
        AssertConsistent(host);
    }

    [Test]
    public void Aging_a_classic_host_is_refused_and_an_undefined_policy_is_rejected()
    {
        using var host = Create();
        Assert.That(() => host.Reclaim.AgeCgroup(host.Reclaim.Root), Throws.InvalidOperationException.With.Message.Contains("MultiGen"));
        Assert.That(
            () => new ReclaimOptions { Policy = (LruPolicy)7 }.Validate(),
            Throws.TypeOf<ArgumentOutOfRangeException>().With.Property(nameof(ArgumentException.ParamName)).EqualTo("Policy"));
    }

    private const int HotColdHotPages = 128;
    private const int HotColdColdPages = 32;
    private const int HotColdRounds = 64;

    /// <summary>
    /// Runs the hot/cold workload under <paramref name="policy"/> and returns how many times a hot page had to come back
    /// from swap. With <paramref name="guestOnly"/> the hot pages are used only through a secondary MMU (an EPT): the host
    /// reads a hot page only when it is swapped out (the guest's fault), and the use is seen only as a young answer.
    /// </summary>
    private static long HotColdSwapIns(LruPolicy policy, bool guestOnly)
    {
        using var host = Create(reclaim: new ReclaimOptions { Policy = policy });
        var mm = LimitedProcess(host, limitPages: 2 * HotColdHotPages);
        var hot = mm.Mmap(HotColdHotPages * Page, Protection.Read | Protection.Write);
        var cold = mm.Mmap(HotColdRounds * HotColdColdPages * Page, Protection.Read | Protection.Write);
        var guest = new GuestAccesses(hot, HotColdHotPages);
        mm.Notifiers.Register(guest);
        WritePattern(mm, hot, HotColdHotPages, seed: 8);
        var buffer = new byte[8];
        long swapIns = 0;
        for (var round = 0; round < HotColdRounds; round++)
        {
            for (var page = 0; page < HotColdHotPages; page++)
            {
                var address = hot + ((ulong)page * Page);
                var swapped = SwappedPages(mm, address, 1) == 1;
                swapIns += swapped ? 1 : 0;
                if (!guestOnly || swapped)
                {
                    mm.Read(address, buffer);
                }

                if (guestOnly)
                {
                    guest.Touch(page);
                }
            }

            var coldStart = cold + ((ulong)round * HotColdColdPages * Page);
            for (var page = 0; page < HotColdColdPages; page++)
            {
                mm.Write(coldStart + ((ulong)page * Page), PageData(page, round));
            }
        }

        Assert.That(CorruptPages(mm, hot, HotColdHotPages, seed: 8), Is.Empty);
        AssertConsistent(host);
        return swapIns;
    }

    private static Lruvec LruvecOfPage(Host host, Mm mm, Hva address) =>
        host.Reclaim.LruvecOf(ref host.Memory.Frame(mm.PageTable.Read(address).Pfn));

    private static int GenerationOf(Host host, Mm mm, Hva address) =>
        host.Memory.Frame(mm.PageTable.Read(address).Pfn).Generation;

    [Test]
    public void The_aging_walk_asks_a_secondary_mmu_once_per_run_of_a_pte_table_and_promotes_exactly_the_pages_it_found_young()
    {
        using var host = Create(reclaim: MultiGen);
        var mm = LimitedProcess(host, limitPages: 1024);
        var start = mm.Mmap(64 * Page, Protection.Read | Protection.Write);
        WritePattern(mm, start, 64, seed: 8);
        host.Reclaim.AgeCgroup(mm.Cgroup);
        host.Reclaim.AgeCgroup(mm.Cgroup); // the host's own accessed bits are spent
        var guest = new YoungEveryFourth(start);
        mm.Notifiers.Register(guest);

        Assert.That(host.Reclaim.AgeCgroup(mm.Cgroup), Is.EqualTo(16), "only the guest's answers make pages young");

        var lruvec = LruvecOfPage(host, mm, start);
        for (var page = 0; page < 64; page++)
        {
            var young = GenerationOf(host, mm, start + ((ulong)page * Page)) == (int)(lruvec.MaxSeq % 4) + 1;
            Assert.That(young, Is.EqualTo(page % 4 == 0), $"page {page}");
        }

        Assert.That(guest.BitmapCalls, Is.EqualTo(1), "64 pages in one PTE table, all on one node: one call, not one per page (the other node's walk has no candidates to ask about)");
        Assert.That(guest.PagesAsked, Is.EqualTo(64));
        AssertConsistent(host);
    }

    /// <summary>A secondary MMU that ages whole ranges (as the TDP MMU does) and finds every fourth page from <c>start</c> young.</summary>
    private sealed class YoungEveryFourth(Hva start) : IMmuNotifier
    {
        public int BitmapCalls { get; private set; }

        public long PagesAsked { get; private set; }

        public void ClearYoungBitmap(IMm mm, Hva from, Hva to, Span<ulong> young)
        {
            BitmapCalls++;
            var pages = (int)((to - from) / Page);
            PagesAsked += pages;
            for (var i = 0; i < pages; i++)
            {
                if ((((from + ((ulong)i * Page)) - start) / Page) % 4 == 0)
                {
                    young[i >> 6] |= 1UL << (i & 63);
                }
            }
        }
    }

    /// <summary>
    /// A secondary MMU (a guest through its EPT) with an accessed bit per page of a range: <see cref="Touch"/> sets it (a
    /// guest access), the young queries test and clear it.
    /// </summary>
    private sealed class GuestAccesses(Hva start, int pages) : IMmuNotifier
    {
        private readonly bool[] _young = new bool[pages];

        public void Touch(int page) => _young[page] = true;

        public bool ClearFlushYoung(IMm mm, Hva from, Hva to) => ClearYoung(mm, from, to);

        public bool ClearYoung(IMm mm, Hva from, Hva to)
        {
            var young = false;
            for (var address = from.Value; address < to.Value; address += Page)
            {
                var page = (long)((address - start.Value) / Page);
                if (address >= start.Value && page < pages && _young[page])
                {
                    _young[page] = false;
                    young = true;
                }
            }

            return young;
        }
    }

    /// <summary>A secondary MMU (a guest through its EPT) that uses a range constantly: every young query on it says young.</summary>
    private sealed class YoungRange(Hva start, Hva end) : IMmuNotifier
    {
        public int ClearYoungCalls { get; private set; }

        public int ClearFlushYoungCalls { get; private set; }

        public bool ClearFlushYoung(IMm mm, Hva from, Hva to)
        {
            ClearFlushYoungCalls++;
            return from < end && start < to;
        }

        public bool ClearYoung(IMm mm, Hva from, Hva to)
        {
            ClearYoungCalls++;
            return from < end && start < to;
        }
    }
}
