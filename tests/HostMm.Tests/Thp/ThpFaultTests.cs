using Hypervisor.HostMm.Frames;
using Hypervisor.HostMm.PageTables;
using Hypervisor.HostMm.Vmas;
using Hypervisor.Notifier;
using static Hypervisor.HostMm.Tests.Thp.ThpHosts;

namespace Hypervisor.HostMm.Tests.Thp;

/// <summary>Huge faults: a write maps a 2 MiB block with one huge leaf, a read the huge zero page, by the THP mode and advice.</summary>
public class ThpFaultTests
{
    [Test]
    public void A_write_to_an_aligned_2_mib_maps_one_huge_leaf_over_512_frames_with_the_data_everywhere()
    {
        using var host = ThpHosts.Create();
        var mm = host.CreateMm();
        var start = MapAligned(mm, 2);

        Assert.That(mm.HandleFault(start + (5 * Page), FaultAccess.Write), Is.EqualTo(FaultResult.DemandZero));

        var pmd = mm.PageTable.ReadPmd(start);
        Assert.That(HostPageTable.IsHugeLeaf(pmd.Value), Is.True);
        Assert.That(pmd.Pfn.Value % 512, Is.Zero);
        Assert.That(pmd.IsWritable && pmd.IsDirty, Is.True);
        Assert.That(mm.Stats.RssPages, Is.EqualTo(512));
        Assert.That(mm.ThpStats.ThpFaultAlloc, Is.EqualTo(1));
        Assert.That(mm.ThpStats.HugeLeaves, Is.EqualTo(1));
        Assert.That(mm.PageTable.Read(start + (7 * Page)).Pfn, Is.EqualTo(pmd.Pfn + 7UL), "the 4 KiB view of a subpage");
        Assert.That(mm.PageTable.Stats.PteTables, Is.Zero, "no PTE table at all");
        Stamp(mm, start, 512, seed: 1);
        Assert.That(Unstamped(mm, start, 512, seed: 1), Is.Empty);
        Assert.That(mm.ThpStats.ThpFaultAlloc, Is.EqualTo(1), "the 511 other pages needed no fault");
        AssertConsistent(host);
    }

    [Test]
    public void A_read_maps_the_huge_zero_page_and_the_first_write_replaces_it_inside_one_clear_range()
    {
        using var host = ThpHosts.Create();
        var mm = host.CreateMm();
        var start = MapAligned(mm, 1);

        Assert.That(mm.HandleFault(start, FaultAccess.Read), Is.EqualTo(FaultResult.ZeroPage));
        var zero = mm.PageTable.ReadPmd(start);
        Assert.That(HostPageTable.IsHugeLeaf(zero.Value) && !zero.IsWritable, Is.True);
        Assert.That(mm.Stats.RssPages, Is.Zero, "the huge zero page is not resident memory of the process");
        var bytes = new byte[Page];
        mm.Read(start + (100 * Page), bytes);
        Assert.That(bytes.All(b => b == 0), Is.True);
        var recorder = Processes.TestHosts.Record(mm);

        mm.Write(start + Page, new byte[] { 9 });

        Assert.That(Processes.TestHosts.Timeline(recorder, mm), Is.EqualTo("start:Clear pte flush pte end"));
        var leaf = mm.PageTable.ReadPmd(start);
        Assert.That(HostPageTable.IsHugeLeaf(leaf.Value) && leaf.IsWritable && leaf.Pfn != zero.Pfn, Is.True, "a new huge page replaced the zero page");
        Assert.That(mm.Stats.RssPages, Is.EqualTo(512));
        mm.Read(start + Page, bytes);
        Assert.That(bytes[0], Is.EqualTo(9));
        AssertConsistent(host);
    }

    [Test]
    public void Never_maps_no_huge_page_and_madvise_only_where_advised()
    {
        using var never = ThpHosts.Create(ThpMode.Never);
        var a = never.CreateMm();
        var startA = MapAligned(a, 1);
        a.Write(startA, new byte[] { 1 });
        Assert.That(a.PageTable.IsHugeMapped(startA), Is.False);
        Assert.That(a.Stats.RssPages, Is.EqualTo(1));

        using var madvise = ThpHosts.Create(ThpMode.Madvise);
        var b = madvise.CreateMm();
        var startB = MapAligned(b, 2);
        b.Write(startB, new byte[] { 1 });
        Assert.That(b.PageTable.IsHugeMapped(startB), Is.False, "not advised");
        b.Madvise(startB + HugeBytes, HugeBytes, Advice.HugePage);
        b.Write(startB + HugeBytes, new byte[] { 1 });
        Assert.That(b.PageTable.IsHugeMapped(startB + HugeBytes), Is.True, "advised");
        Assert.That(b.Vmas.Count(v => (v.Flags & VmaFlags.HugePage) != 0), Is.EqualTo(1));

        using var always = ThpHosts.Create(ThpMode.Always);
        var c = always.CreateMm();
        var startC = MapAligned(c, 1);
        c.Madvise(startC, HugeBytes, Advice.NoHugePage);
        c.Write(startC, new byte[] { 1 });
        Assert.That(c.PageTable.IsHugeMapped(startC), Is.False, "NOHUGEPAGE wins over always");
        AssertConsistent(always);
    }

    [Test]
    public void A_vma_that_does_not_cover_an_aligned_2_mib_gets_4_kib_pages()
    {
        using var host = ThpHosts.Create();
        var mm = host.CreateMm();
        // Keep only [aligned + 4 KiB, aligned + 4 KiB + 2 MiB): 2 MiB long, but it covers no aligned 2 MiB.
        var region = mm.Mmap(3 * HugeBytes, Protection.Read | Protection.Write);
        var aligned = new Hva((region.Value + HugeBytes - 1) & ~(HugeBytes - 1));
        var start = aligned + Page;
        mm.Munmap(region, start - region);
        mm.Munmap(start + HugeBytes, (region + (3 * HugeBytes)) - (start + HugeBytes));
        Assert.That(mm.Vmas.Single().Length, Is.EqualTo(HugeBytes));

        mm.Write(start, new byte[] { 1 });

        Assert.That(mm.ThpStats.HugeLeaves, Is.Zero);
        Assert.That(mm.Stats.RssPages, Is.EqualTo(1));
    }

    [Test]
    public void With_no_whole_free_block_the_fault_falls_back_to_4_kib_and_counts_it()
    {
        using var host = ThpHosts.Create();
        var held = new List<Pfn>();
        while (host.Memory.TryAllocate(0, AllocationFlags.None, out var pfn))
        {
            held.Add(pfn);
        }

        foreach (var pfn in held.Where(p => p.Value % 512 != 3))
        {
            host.Memory.Put(pfn);
        }

        var mm = host.CreateMm();
        var start = MapAligned(mm, 1);
        mm.Write(start, new byte[] { 1 });

        Assert.That(mm.PageTable.IsHugeMapped(start), Is.False);
        Assert.That(mm.ThpStats.ThpFaultFallback, Is.EqualTo(1));
        Assert.That(mm.Stats.RssPages, Is.EqualTo(1));
        foreach (var pfn in held.Where(p => p.Value % 512 == 3))
        {
            host.Memory.Put(pfn);
        }

        AssertConsistent(host);
    }

    [Test]
    public void Get_user_pages_on_a_huge_leaf_returns_the_subpage_and_says_the_host_maps_it_huge()
    {
        using var host = ThpHosts.Create();
        var mm = host.CreateMm();
        var start = MapAligned(mm, 1);
        mm.Write(start, new byte[] { 1 });
        var head = mm.PageTable.ReadPmd(start).Pfn;

        var page = mm.GetUserPages(start + (42 * Page), write: true);

        Assert.That(page.Pfn, Is.EqualTo(head + 42UL));
        Assert.That(page.HostHuge && page.Writable, Is.True);
        Assert.That(host.Memory.Frame(page.Pfn).RefCount, Is.EqualTo(2));
        mm.ReleasePage(page.Pfn);
        AssertConsistent(host);
    }

    [Test]
    public void Exit_frees_every_frame_of_every_huge_page()
    {
        using var host = ThpHosts.Create();
        var free = host.Memory.FreeFrames;
        var mm = host.CreateMm();
        var start = MapAligned(mm, 3);
        Stamp(mm, start, 3 * 512, seed: 2);
        Assert.That(mm.ThpStats.HugeLeaves, Is.EqualTo(3));

        mm.Exit();

        Assert.That(host.Memory.FreeFrames, Is.EqualTo(free));
        AssertConsistent(host);
    }
}
