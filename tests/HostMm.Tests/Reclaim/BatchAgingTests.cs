using Hypervisor.HostMm.Reclaim;
using Hypervisor.HostMm.Vmas;
using Hypervisor.Notifier;
using static Hypervisor.HostMm.Tests.Reclaim.SwapHosts;

namespace Hypervisor.HostMm.Tests.Reclaim;

/// <summary>
/// The classic LRU's batched aging: exclusively mapped pages of a batch are aged a run of one PTE table at a time with
/// one <c>clear_flush_young</c> bitmap query; shared pages keep the per-mapping walk; the per-page answers are unchanged.
/// </summary>
public class BatchAgingTests
{
    [Test]
    public void A_run_of_consecutive_pages_is_asked_once_and_each_page_gets_its_own_answer()
    {
        using var host = Create();
        var mm = host.CreateMm();
        var start = mm.Mmap(8 * Page, Protection.Read | Protection.Write);
        WritePattern(mm, start, 8, seed: 1);
        var batch = FramesOf(mm, start, 8);
        ClearPrimaryAccessed(host, batch);
        var queries = host.Reclaim.Stats.SecondaryYoungQueries;
        var secondary = new BitmapYoung(start + (2 * Page), start + (4 * Page));
        mm.Notifiers.Register(secondary);

        var (references, complete) = Age(host, batch);

        Assert.That(references, Is.EqualTo(new[] { 0, 0, 1, 1, 0, 0, 0, 0 }), "young exactly where the secondary MMU said so");
        Assert.That(complete, Is.All.True);
        Assert.That(secondary.BitmapCalls, Is.EqualTo(new[] { (start, start + (8 * Page)) }), "one query for the whole run");
        Assert.That(secondary.PageCalls, Is.Zero);
        Assert.That(host.Reclaim.Stats.SecondaryYoungQueries - queries, Is.EqualTo(8), "a query counts per page asked");
        Assert.That(host.Reclaim.Stats.SecondaryYoungHits, Is.EqualTo(2));

        var (again, _) = Age(host, batch);
        Assert.That(again, Is.EqualTo(new int[8]), "the first pass cleared every bit it answered from");
    }

    [Test]
    public void The_primary_accessed_bit_counts_and_is_cleared_under_batching()
    {
        using var host = Create();
        var mm = host.CreateMm();
        var start = mm.Mmap(4 * Page, Protection.Read | Protection.Write);
        WritePattern(mm, start, 4, seed: 2); // the writes leave every host PTE young
        var secondary = new BitmapYoung(start, start);
        mm.Notifiers.Register(secondary);
        var batch = FramesOf(mm, start, 4);

        var (references, _) = Age(host, batch);

        Assert.That(references, Is.EqualTo(new[] { 1, 1, 1, 1 }));
        Assert.That(mm.PageTable.Read(start + Page).IsAccessed, Is.False);
        Assert.That(secondary.BitmapCalls, Has.Count.EqualTo(1), "the secondary MMUs are asked whatever the primary bit said");
    }

    [Test]
    public void A_gap_in_the_batch_ends_the_run_so_pages_outside_it_are_never_asked()
    {
        using var host = Create();
        var mm = host.CreateMm();
        var start = mm.Mmap(8 * Page, Protection.Read | Protection.Write);
        WritePattern(mm, start, 8, seed: 3);
        var secondary = new BitmapYoung(start, start + (8 * Page));
        mm.Notifiers.Register(secondary);
        var frames = FramesOf(mm, start, 8);
        var batch = new[] { frames[6], frames[0], frames[5], frames[1], frames[2] }; // out of order: sorted by index first

        Age(host, batch);

        Assert.That(secondary.BitmapCalls, Is.EqualTo(new[] { (start, start + (3 * Page)), (start + (5 * Page), start + (7 * Page)) }));
        Assert.That(secondary.YoungLeft(start + (3 * Page)) && secondary.YoungLeft(start + (4 * Page)) && secondary.YoungLeft(start + (7 * Page)), Is.True,
            "pages not in the batch keep their secondary accessed bits");
    }

    [Test]
    public void Pages_shared_by_a_fork_keep_the_per_mapping_walk()
    {
        using var host = Create();
        var parent = host.CreateMm();
        var start = parent.Mmap(4 * Page, Protection.Read | Protection.Write);
        WritePattern(parent, start, 4, seed: 4);
        var secondary = new BitmapYoung(start, start + (4 * Page));
        parent.Notifiers.Register(secondary);
        var child = parent.Fork();
        var batch = FramesOf(parent, start, 4);

        var (references, complete) = Age(host, batch);

        Assert.That(secondary.BitmapCalls, Is.Empty);
        Assert.That(secondary.PageCalls, Is.EqualTo(4), "one clear_flush_young per shared page's parent mapping");
        Assert.That(references, Is.All.GreaterThanOrEqualTo(1), "the writes left the parent's PTEs young");
        Assert.That(complete, Is.All.True);
        child.Exit();
    }

    [Test]
    public void Reclaim_under_the_classic_policy_ages_through_the_bitmap_and_keeps_hot_pages_only_while_secondary_answers_count([Values] bool secondaryAging)
    {
        using var host = Create(reclaim: new ReclaimOptions { SecondaryAging = secondaryAging, Policy = LruPolicy.Classic });
        var mm = LimitedProcess(host, limitPages: 64);
        var start = mm.Mmap(256 * Page, Protection.Read | Protection.Write);
        var hot = new BitmapYoung(start, start + (16 * Page)) { Sticky = true }; // a guest keeps touching these through its EPT
        mm.Notifiers.Register(hot);
        WritePattern(mm, start, 64, seed: 5);

        for (var page = 64; page < 256; page++)
        {
            mm.Write(start + ((ulong)page * Page), PageData(page, 5));
        }

        var hotResident = 16 - SwappedPages(mm, start, 16);
        Assert.That(hot.BitmapCalls, Is.Not.Empty);
        Assert.That(hot.PageCalls, Is.Zero, "exclusively mapped pages are never aged one call per page");
        Assert.That(hot.BitmapPages, Is.EqualTo(host.Reclaim.Stats.SecondaryYoungQueries));
        Assert.That(hot.BitmapCalls.Count, Is.LessThan(hot.BitmapPages / 4), "runs, not pages");
        Assert.That(host.Reclaim.Stats.SecondaryYoungHits, Is.GreaterThan(0));
        if (secondaryAging)
        {
            Assert.That(hotResident, Is.EqualTo(16));
        }
        else
        {
            Assert.That(hotResident, Is.LessThan(8), "without secondary aging the answers are ignored");
        }

        Assert.That(CorruptPages(mm, start, 256, seed: 5), Is.Empty);
        AssertConsistent(host);
    }

    private static (int[] References, bool[] Complete) Age(Host host, Pfn[] frames)
    {
        var batch = frames.Select(pfn => (uint)pfn.Value).ToArray();
        var age = Enumerable.Repeat(true, batch.Length).ToArray();
        var references = new int[batch.Length];
        var complete = new bool[batch.Length];
        host.Reclaim.FolioReferencedBatch(batch, age, references, complete);
        return (references, complete);
    }

    private static Pfn[] FramesOf(Mm mm, Hva start, int pages) =>
        Enumerable.Range(0, pages).Select(page => mm.PageTable.Read(start + ((ulong)page * Page)).Pfn).ToArray();

    private static void ClearPrimaryAccessed(Host host, Pfn[] frames)
    {
        // A first pass with nobody subscribed takes the writes' accessed bits off.
        var batch = frames.Select(pfn => (uint)pfn.Value).ToArray();
        host.Reclaim.FolioReferencedBatch(batch, Enumerable.Repeat(true, batch.Length).ToArray(), new int[batch.Length], new bool[batch.Length]);
    }

    /// <summary>
    /// A secondary MMU whose pages in <c>[start, end)</c> start young; clearing makes them old unless <see cref="Sticky"/>.
    /// Overrides the bitmap op and records each range it is asked about.
    /// </summary>
    private sealed class BitmapYoung(Hva start, Hva end) : IMmuNotifier
    {
        private readonly HashSet<Hva> _cleared = [];

        public bool Sticky { get; init; }

        public List<(Hva Start, Hva End)> BitmapCalls { get; } = [];

        public long BitmapPages { get; private set; }

        public int PageCalls { get; private set; }

        public bool YoungLeft(Hva page) => page >= start && page < end && !_cleared.Contains(page);

        public void ClearFlushYoungBitmap(IMm mm, Hva from, Hva to, Span<ulong> young)
        {
            BitmapCalls.Add((from, to));
            var pages = (int)((to - from) / Page);
            BitmapPages += pages;
            for (var i = 0; i < pages; i++)
            {
                if (TestAndClear(from + ((ulong)i * Page)))
                {
                    young[i >> 6] |= 1UL << (i & 63);
                }
            }
        }

        public bool ClearFlushYoung(IMm mm, Hva from, Hva to)
        {
            PageCalls++;
            return TestAndClear(from);
        }

        private bool TestAndClear(Hva page)
        {
            var young = YoungLeft(page);
            if (young && !Sticky)
            {
                _cleared.Add(page);
            }

            return young;
        }
    }
}
