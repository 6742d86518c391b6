using Hypervisor.HostMm.Ksm;
using Hypervisor.HostMm.Vmas;
using Hypervisor.Notifier;
using static Hypervisor.HostMm.Tests.Ksm.KsmHosts;

namespace Hypervisor.HostMm.Tests.Ksm;

/// <summary>madvise MERGEABLE/UNMERGEABLE, prctl PR_SET_MEMORY_MERGE, run = 2, and the knobs' bad values.</summary>
public class KsmUnmergeTests
{
    [Test]
    public void Madvise_mergeable_sets_the_bit_on_exactly_the_range_splitting_the_vma()
    {
        using var host = Create();
        var mm = host.CreateMm();
        var start = mm.Mmap(8 * Page, Protection.Read | Protection.Write);

        mm.Madvise(start + (2 * Page), 3 * Page, Advice.Mergeable);

        var vmas = mm.Vmas;
        Assert.That(vmas.Select(v => (v.Start, v.End, (v.Flags & VmaFlags.Mergeable) != 0)), Is.EqualTo(new[]
        {
            (start, start + (2 * Page), false),
            (start + (2 * Page), start + (5 * Page), true),
            (start + (5 * Page), start + (8 * Page), false),
        }));
    }

    [Test]
    public void Madvise_unmergeable_breaks_the_merged_pages_of_the_range_first_and_reads_stay_the_same()
    {
        using var host = Create();
        var mm = host.CreateMm();
        var start = MapMergeable(mm, 4, i => 40);
        FullScans(host);
        Assert.That(IsKsm(host, mm, start), Is.True);

        mm.Madvise(start, 2 * Page, Advice.Unmergeable);

        Assert.That(IsKsm(host, mm, start), Is.False);
        Assert.That(IsKsm(host, mm, start + Page), Is.False);
        Assert.That(IsKsm(host, mm, start + (2 * Page)), Is.True, "outside the range pages stay merged");
        Assert.That(mm.PageTable.Read(start).IsWritable, Is.False, "an unshare fault maps the copy read-only; a write reuses it");
        for (var i = 0; i < 4; i++)
        {
            Assert.That(Read(mm, start + ((ulong)i * Page)), Is.EqualTo(PageOf(40)));
        }

        var copy = FrameAt(mm, start);
        mm.Write(start, PageOf(41));
        Assert.That(FrameAt(mm, start), Is.EqualTo(copy), "the unshared copy is exclusive: written in place");
        Assert.That(mm.Vmas.First().Flags & VmaFlags.Mergeable, Is.EqualTo(VmaFlags.None));
        AssertConsistent(host);

        FullScans(host);
        Assert.That(host.Ksm.Stats.PagesShared, Is.EqualTo(1));
        Assert.That(host.Ksm.Stats.PagesSharing, Is.EqualTo(1), "after a pass the unmergeable range's items are gone");
        Assert.That(host.Ksm.Stats.RmapItems, Is.EqualTo(2));
    }

    [Test]
    public void Run_unmerge_breaks_every_KSM_page_of_every_process_and_scans_no_more()
    {
        using var host = Create();
        var a = host.CreateMm();
        var b = host.CreateMm();
        var pa = MapMergeable(a, 3, i => 50);
        var pb = MapMergeable(b, 3, i => 50);
        FullScans(host);
        Assert.That(host.Ksm.Stats.PagesSharing, Is.EqualTo(5));

        host.Ksm.Run = KsmRunMode.Unmerge;

        var stats = host.Ksm.Stats;
        Assert.That((stats.PagesShared, stats.PagesSharing, stats.RmapItems, stats.PagesUnshared), Is.EqualTo((0L, 0L, 0L, 0L)));
        for (var i = 0; i < 3; i++)
        {
            Assert.That(IsKsm(host, a, pa + ((ulong)i * Page)), Is.False);
            Assert.That(Read(b, pb + ((ulong)i * Page)), Is.EqualTo(PageOf(50)));
        }

        Assert.That(host.Ksm.Step(), Is.Zero);
        AssertConsistent(host);

        FullScans(host);
        Assert.That(host.Ksm.Stats.PagesSharing, Is.EqualTo(5), "run = 1 again merges again: processes stayed listed");
    }

    [Test]
    public void Set_memory_merge_makes_current_and_future_mappings_mergeable_and_off_unmerges()
    {
        using var host = Create();
        var mm = host.CreateMm();
        var first = mm.Mmap(2 * Page, Protection.Read | Protection.Write);
        mm.Write(first, PageOf(60));

        mm.SetMemoryMerge(true);
        var second = mm.Mmap(2 * Page, Protection.Read | Protection.Write);
        mm.Write(second, PageOf(60));

        Assert.That(mm.MemoryMerge, Is.True);
        Assert.That(mm.Vmas.All(v => (v.Flags & VmaFlags.Mergeable) != 0), Is.True);
        FullScans(host);
        Assert.That(FrameAt(mm, first), Is.EqualTo(FrameAt(mm, second)));

        mm.SetMemoryMerge(false);

        Assert.That(mm.MemoryMerge, Is.False);
        Assert.That(mm.Vmas.Any(v => (v.Flags & VmaFlags.Mergeable) != 0), Is.False);
        Assert.That(IsKsm(host, mm, first), Is.False);
        Assert.That(IsKsm(host, mm, second), Is.False);
        Assert.That(Read(mm, first), Is.EqualTo(PageOf(60)));
        var third = mm.Mmap(Page, Protection.Read | Protection.Write);
        Assert.That(mm.Vmas.Single(v => v.Start == third).Flags & VmaFlags.Mergeable, Is.EqualTo(VmaFlags.None));
        AssertConsistent(host);
    }

    [Test]
    public void Madvise_mergeable_of_a_range_with_a_hole_is_refused_and_changes_nothing()
    {
        using var host = Create();
        var mm = host.CreateMm();
        var start = mm.Mmap(4 * Page, Protection.Read | Protection.Write);
        mm.Munmap(start + Page, Page);

        var error = Assert.Throws<UnmappedRangeException>(() => mm.Madvise(start, 4 * Page, Advice.Mergeable));
        Assert.That(error!.Message, Does.Contain("Mergeable"));
        Assert.That(mm.Vmas.Any(v => (v.Flags & VmaFlags.Mergeable) != 0), Is.False);
        Assert.Throws<InvalidRangeException>(() => mm.Madvise(start + 1, Page, Advice.Unmergeable));
        Assert.Throws<InvalidRangeException>(() => mm.Madvise(start, 0, Advice.Mergeable));
    }

    [Test]
    public void Bad_knob_values_name_the_knob_the_value_and_the_rule()
    {
        using var host = Create();
        var ksm = host.Ksm;

        var error = Assert.Throws<InvalidKsmSettingException>(() => ksm.MaxPageSharing = 1);
        Assert.That(error!.Knob, Is.EqualTo("max_page_sharing"));
        Assert.That(error.Message, Does.Contain("1").And.Contain("at least 2"));
        Assert.That(Assert.Throws<InvalidKsmSettingException>(() => ksm.PagesToScan = 0)!.Knob, Is.EqualTo("pages_to_scan"));
        Assert.That(Assert.Throws<InvalidKsmSettingException>(() => ksm.SleepMilliseconds = -1)!.Knob, Is.EqualTo("sleep_millisecs"));
        Assert.That(Assert.Throws<InvalidKsmSettingException>(() => ksm.Run = (KsmRunMode)3)!.Knob, Is.EqualTo("run"));
        Assert.Throws<ArgumentOutOfRangeException>(() => ksm.Step(-1));
        Assert.That((ksm.PagesToScan, ksm.SleepMilliseconds, ksm.MaxPageSharing, ksm.UseZeroPages, ksm.SmartScan), Is.EqualTo((100, 20, 256, false, true)), "Linux's defaults, unchanged by refused values");
    }

    [Test]
    public void Max_page_sharing_cannot_change_while_pages_are_shared()
    {
        using var host = Create();
        var mm = host.CreateMm();
        MapMergeable(mm, 2, i => 70);
        FullScans(host);

        Assert.Throws<InvalidKsmSettingException>(() => host.Ksm.MaxPageSharing = 10);
        host.Ksm.Run = KsmRunMode.Unmerge;
        host.Ksm.MaxPageSharing = 10;
        Assert.That(host.Ksm.MaxPageSharing, Is.EqualTo(10));
    }
}
