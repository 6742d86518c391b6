using Hypervisor.HostMm.PageTables;
using Hypervisor.HostMm.Vmas;
using Hypervisor.Notifier;
using Hypervisor.Notifier.Tracing;
using static Hypervisor.HostMm.Tests.Thp.ThpHosts;

namespace Hypervisor.HostMm.Tests.Thp;

/// <summary>
/// Splits in <c>__split_huge_pmd</c>'s order (reference/mmu-notifier.md §3: start (Clear, the 2 MiB) → leaf cleared and
/// flushed → PTE table of 512 equivalent entries → end, no free) before operations on part of a huge page, and whole
/// leaves zapped with no split.
/// </summary>
public class ThpSplitTests
{
    private const int Frames = 512;

    [Test]
    public void A_partial_munmap_splits_first_in_its_own_clear_range_then_unmaps_the_one_page()
    {
        using var host = ThpHosts.Create();
        var mm = host.CreateMm();
        var start = MapAligned(mm, 1);
        Stamp(mm, start, Frames, seed: 1);
        var recorder = Processes.TestHosts.Record(mm);

        mm.Munmap(start, Page);

        Assert.That(Processes.TestHosts.Timeline(recorder, mm), Is.EqualTo("start:Clear pte flush pte end start:Unmap pte end flush free"));
        var split = recorder.Events.First(e => e.Kind == NotifierTraceKind.InvalidateRangeStart);
        Assert.That((split.Start, split.End), Is.EqualTo((start, start + HugeBytes)), "the split's range is the whole 2 MiB");
        Assert.That(recorder.Count(NotifierTraceKind.FrameFree), Is.EqualTo(1), "only the unmapped page is freed");
        Assert.That(mm.PageTable.IsHugeMapped(start), Is.False);
        Assert.That(mm.ThpStats.ThpSplitPmd, Is.EqualTo(1));
        Assert.That(mm.Stats.RssPages, Is.EqualTo(Frames - 1));
        for (var i = 1; i < Frames; i++)
        {
            var bytes = new byte[8];
            mm.Read(start + ((ulong)i * Page), bytes);
            Assert.That(BitConverter.ToInt64(bytes), Is.EqualTo((1 * 1_000_003L) + i), $"page {i} kept its data across the split");
        }

        AssertConsistent(host);
    }

    [Test]
    public void A_munmap_of_whole_leaves_zaps_them_without_a_split_and_frees_every_frame_after_the_end()
    {
        using var host = ThpHosts.Create();
        var mm = host.CreateMm();
        var start = MapAligned(mm, 2);
        Stamp(mm, start, 2 * Frames, seed: 2);
        var free = host.Memory.FreeFrames;
        var recorder = Processes.TestHosts.Record(mm);

        mm.Munmap(start, 2 * HugeBytes);

        Assert.That(Processes.TestHosts.Timeline(recorder, mm), Is.EqualTo("start:Unmap pte end flush free"));
        Assert.That(recorder.Count(NotifierTraceKind.FrameFree), Is.EqualTo(2 * Frames));
        Assert.That(mm.ThpStats.ThpSplitPmd, Is.Zero);
        Assert.That(host.Memory.FreeFrames, Is.GreaterThanOrEqualTo(free + (2 * Frames)));
        Assert.That(mm.Stats.RssPages, Is.Zero);
        AssertConsistent(host);
    }

    [Test]
    public void Mprotect_splits_and_protects_every_page_and_the_data_survives()
    {
        using var host = ThpHosts.Create();
        var mm = host.CreateMm();
        var start = MapAligned(mm, 1);
        Stamp(mm, start, Frames, seed: 3);

        mm.Mprotect(start, HugeBytes, Protection.Read);

        Assert.That(mm.PageTable.IsHugeMapped(start), Is.False);
        Assert.That(Enumerable.Range(0, Frames).All(i => !mm.PageTable.Read(start + ((ulong)i * Page)).IsWritable), Is.True);
        Assert.That(() => mm.Write(start, new byte[1]), Throws.InstanceOf<HostFaultException>());
        Assert.That(Unstamped(mm, start, Frames, seed: 3), Is.Empty);
        AssertConsistent(host);
    }

    [Test]
    public void Fork_shares_the_huge_page_read_only_and_a_write_splits_it_and_copies_one_page()
    {
        using var host = ThpHosts.Create();
        var parent = host.CreateMm();
        var start = MapAligned(parent, 1);
        Stamp(parent, start, Frames, seed: 4);
        var head = parent.PageTable.ReadPmd(start).Pfn;

        var child = parent.Fork();

        var childLeaf = child.PageTable.ReadPmd(start);
        Assert.That(HostPageTable.IsHugeLeaf(childLeaf.Value) && childLeaf.Pfn == head && !childLeaf.IsWritable, Is.True, "the child maps the same huge page read-only");
        Assert.That(parent.PageTable.ReadPmd(start).IsWritable, Is.False);
        Assert.That(host.Memory.Frame(head + 100UL).MapCount, Is.EqualTo(2));
        Assert.That(child.Stats.RssPages, Is.EqualTo(Frames));
        AssertConsistent(host);

        parent.Write(start + (10 * Page), BitConverter.GetBytes(-1L));

        Assert.That(parent.PageTable.IsHugeMapped(start), Is.False, "the shared huge page was split in the writer");
        Assert.That(parent.ThpStats.ThpSplitPmd, Is.EqualTo(1));
        Assert.That(parent.PageTable.Read(start + (10 * Page)).Pfn, Is.Not.EqualTo(head + 10UL), "the written page was copied");
        Assert.That(parent.PageTable.Read(start + (11 * Page)).Pfn, Is.EqualTo(head + 11UL), "the others still share");
        Assert.That(child.PageTable.IsHugeMapped(start), Is.True, "the child keeps its huge leaf");
        Assert.That(Unstamped(child, start, Frames, seed: 4), Is.Empty, "the child never sees the parent's write");
        AssertConsistent(host);
        child.Exit();
        AssertConsistent(host);
    }

    [Test]
    public void An_exclusive_read_only_huge_page_becomes_writable_in_place_with_no_split()
    {
        using var host = ThpHosts.Create();
        var parent = host.CreateMm();
        var start = MapAligned(parent, 1);
        Stamp(parent, start, Frames, seed: 5);
        parent.Fork().Exit(); // the leaf stays read-only, the page is exclusive again

        parent.Write(start, new byte[] { 1 });

        Assert.That(parent.PageTable.ReadPmd(start) is var leaf && HostPageTable.IsHugeLeaf(leaf.Value) && leaf.IsWritable, Is.True);
        Assert.That(parent.ThpStats.ThpSplitPmd, Is.Zero);
        AssertConsistent(host);
    }

    [Test]
    public void Mremap_moves_a_split_huge_page_with_its_data()
    {
        using var host = ThpHosts.Create();
        var mm = host.CreateMm();
        var start = MapAligned(mm, 1);
        Stamp(mm, start, Frames, seed: 6);
        var vma = mm.Vmas.Single();

        var moved = mm.Mremap(vma.Start, vma.Length, vma.Length, MremapFlags.MayMove | MremapFlags.Fixed, vma.Start + (8 * HugeBytes));

        var newStart = moved + (start - vma.Start);
        Assert.That(Unstamped(mm, newStart, Frames, seed: 6), Is.Empty);
        Assert.That(mm.Stats.RssPages, Is.EqualTo(Frames));
        AssertConsistent(host);
    }

    [Test]
    public void Dontneed_of_part_splits_and_of_the_whole_zaps()
    {
        using var host = ThpHosts.Create();
        var mm = host.CreateMm();
        var start = MapAligned(mm, 2);
        Stamp(mm, start, 2 * Frames, seed: 7);

        mm.Madvise(start + (3 * Page), 2 * Page, Advice.DontNeed);
        mm.Madvise(start + HugeBytes, HugeBytes, Advice.DontNeed);

        Assert.That(mm.ThpStats.ThpSplitPmd, Is.EqualTo(1));
        Assert.That(mm.Stats.RssPages, Is.EqualTo(Frames - 2));
        var bytes = new byte[8];
        mm.Read(start + (3 * Page), bytes);
        Assert.That(BitConverter.ToInt64(bytes), Is.Zero, "dropped pages read as zeroes");
        mm.Read(start + HugeBytes, bytes);
        Assert.That(BitConverter.ToInt64(bytes), Is.Zero);
        mm.Read(start + (5 * Page), bytes);
        Assert.That(BitConverter.ToInt64(bytes), Is.EqualTo((7 * 1_000_003L) + 5));
        AssertConsistent(host);
    }

    [Test]
    public void A_huge_fault_racing_a_partial_dontneed_is_split_in_its_own_range_and_keeps_the_data_outside()
    {
        // MADV_DONTNEED holds the mmap lock for read, so a huge demand fault elsewhere in the same 2 MiB can fill the empty
        // PD entry after the DONTNEED split its edges and between its notifier start and its zap. That leaf is wider than the
        // DONTNEED's range: zapping it whole dropped the racing write and freed 512 frames behind a range a secondary MMU
        // was told about only in part (it may have mapped the new leaf whole meanwhile).
        using var host = ThpHosts.Create();
        var mm = host.CreateMm();
        var start = MapAligned(mm, 1);
        var dropStart = start + (100 * Page);
        var dropEnd = dropStart + (16 * Page);
        const long written = 0x5EED_5EED;
        var racer = new RaceOnStartNotifier(dropStart, dropEnd, () => mm.Write(start, BitConverter.GetBytes(written)));
        mm.Notifiers.Register(racer);

        mm.Madvise(dropStart, dropEnd - dropStart, Advice.DontNeed);

        Assert.That(racer.Ran, Is.True, "the fault ran between the DONTNEED's start and its zap");
        var bytes = new byte[8];
        mm.Read(start, bytes);
        Assert.That(BitConverter.ToInt64(bytes), Is.EqualTo(written), "the racing write outside the dropped range survives");
        Assert.That(mm.PageTable.IsHugeMapped(start), Is.False, "the leaf straddling the range was split");
        Assert.That(racer.Ranges, Does.Contain((start, start + HugeBytes, NotifierEvent.Clear)), "the split's start covers the whole 2 MiB");
        Assert.That(mm.Stats.RssPages, Is.EqualTo(Frames - 16), "only the 16 pages asked for were dropped");
        mm.Read(dropStart, bytes);
        Assert.That(BitConverter.ToInt64(bytes), Is.Zero, "the dropped range reads as zeroes");
        AssertConsistent(host);
    }

    [Test]
    public void The_huge_zero_page_splits_into_4_kib_zero_pages()
    {
        using var host = ThpHosts.Create();
        var mm = host.CreateMm();
        var start = MapAligned(mm, 1);
        mm.Read(start, new byte[8]);
        Assert.That(mm.PageTable.IsHugeMapped(start), Is.True);

        mm.Mprotect(start, HugeBytes, Protection.Read);

        Assert.That(mm.PageTable.IsHugeMapped(start), Is.False);
        Assert.That(mm.PageTable.Read(start + (77 * Page)).Pfn, Is.EqualTo(host.ZeroPfn));
        Assert.That(mm.Stats.RssPages, Is.Zero);
        AssertConsistent(host);
    }
}
