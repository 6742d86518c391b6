using Hypervisor.Notifier;
using Hypervisor.HostMm.PageTables;
using Hypervisor.HostMm.Vmas;
using static Hypervisor.HostMm.Tests.Migration.MigrationHosts;

namespace Hypervisor.HostMm.Tests.Migration;

/// <summary><see cref="Mm.ResidentPagesPerNode"/>: numa_maps' N0=… N1=… counts follow the pages as they migrate.</summary>
public class NumaMapsTests
{
    [Test]
    public void Counts_follow_the_pages_across_nodes_and_skip_the_zero_page_and_untouched_pages()
    {
        using var host = MigrationHosts.Create(nodes: 4);
        var (mm, start) = Populated(host, 48, seed: 5);
        var end = start + (48 * Page);
        var extra = mm.Mmap(16 * Page, Protection.Read | Protection.Write);
        mm.Read(extra, new byte[8]); // a read fault maps the shared zero page: not counted
        var extraEnd = extra + (16 * Page);

        Assert.That(mm.ResidentPagesPerNode(start, end), Is.EqualTo(new long[] { 48, 0, 0, 0 }));
        Assert.That(mm.ResidentPagesPerNode(extra, extraEnd), Is.EqualTo(new long[] { 0, 0, 0, 0 }));

        host.Migration.MigrateRange(mm, start, start + (16 * Page), toNode: 2);
        host.Migration.MigrateRange(mm, start + (40 * Page), end, toNode: 3);

        Assert.That(mm.ResidentPagesPerNode(start, end), Is.EqualTo(new long[] { 24, 0, 16, 8 }));
        Assert.That(mm.ResidentPagesPerNode(start + (8 * Page), start + (44 * Page)), Is.EqualTo(new long[] { 24, 0, 8, 4 }), "only the range asked for");
        Assert.That(mm.ResidentPagesPerNode(start, start), Is.EqualTo(new long[4]));
    }

    [Test]
    public void First_touch_allocates_on_the_faulting_threads_node_and_falls_back_to_the_preferred_node()
    {
        using var host = MigrationHosts.Create(nodes: 4);
        var mm = host.CreateMm(0);
        var start = mm.Mmap(24 * Page, Protection.Read | Protection.Write);
        var thread = new Thread(() =>
        {
            HostThread.CurrentNode = 2;
            WritePattern(mm, start, 16, seed: 7);
        });
        thread.Start();
        thread.Join();
        WritePattern(mm, start + (16 * Page), 8, seed: 8); // this thread has no node: the process's preferred one

        Assert.That(mm.ResidentPagesPerNode(start, start + (24 * Page)), Is.EqualTo(new long[] { 8, 0, 16, 0 }));
        Assert.That(CorruptPages(mm, start, 16, seed: 7), Is.Empty);
    }

    [Test]
    public void A_huge_leaf_counts_its_pages_inside_the_range_and_the_huge_zero_page_none()
    {
        using var host = Thp.ThpHosts.Create();
        var mm = host.CreateMm(0);
        var start = Thp.ThpHosts.MapAligned(mm, 2);
        var huge = start + (512 * Page);
        mm.Read(start, new byte[8]); // the first 2 MiB: the huge zero page
        mm.Write(huge, new byte[] { 1 }); // the second: a huge page of node 0

        Assert.That(HostPageTable.IsHugeLeaf(mm.PageTable.ReadPmd(start).Value) && HostPageTable.IsHugeLeaf(mm.PageTable.ReadPmd(huge).Value), Is.True);
        Assert.That(mm.ResidentPagesPerNode(start, start + (1024 * Page)).Sum(), Is.EqualTo(512));
        Assert.That(mm.ResidentPagesPerNode(start, start + (1024 * Page))[0], Is.EqualTo(512));
        Assert.That(mm.ResidentPagesPerNode(huge + (100 * Page), huge + (164 * Page))[0], Is.EqualTo(64), "only the part of the leaf inside the range");
    }

    [Test]
    public void A_huge_page_is_allocated_on_the_faulting_threads_node()
    {
        using var host = Thp.ThpHosts.Create();
        var mm = host.CreateMm(0);
        var start = Thp.ThpHosts.MapAligned(mm, 1);
        var thread = new Thread(() =>
        {
            HostThread.CurrentNode = 1;
            mm.Write(start, new byte[] { 1 });
        });
        thread.Start();
        thread.Join();

        Assert.That(HostPageTable.IsHugeLeaf(mm.PageTable.ReadPmd(start).Value), Is.True);
        Assert.That(mm.ResidentPagesPerNode(start, start + (512 * Page)), Is.EqualTo(new long[] { 0, 512 }));
    }

    [Test]
    public void Unaligned_or_reversed_ranges_are_refused_naming_the_range()
    {
        using var host = MigrationHosts.Create();
        var (mm, start) = Populated(host, 4, seed: 6);

        Assert.That(() => mm.ResidentPagesPerNode(start + 1, start + Page), Throws.InstanceOf<InvalidRangeException>().With.Message.Contains("multiples of 4096"));
        Assert.That(() => mm.ResidentPagesPerNode(start + Page, start), Throws.InstanceOf<InvalidRangeException>().With.Message.Contains("at or after the start"));
    }
}
