using Hypervisor.HostMm.Frames;
using Hypervisor.HostMm.Swap;
using static Hypervisor.HostMm.Tests.Thp.ThpHosts;

namespace Hypervisor.HostMm.Tests.Thp;

/// <summary>Huge pages through reclaim: a huge page reclaim decides to evict is split first, then its cold pages are swapped out; none of its data is lost.</summary>
public class ThpReclaimTests
{
    private const int Frames = 512;

    [Test]
    public void Under_a_cgroup_limit_cold_huge_pages_are_split_and_swapped_and_every_page_reads_back()
    {
        using var host = new Host(new HostOptions
        {
            Memory = new HostMemoryOptions { TotalBytes = 64UL << 20, AuditFreedFrames = true },
            Swap = new SwapOptions { Kind = SwapDeviceKind.Zram, SizeBytes = 32UL << 20 },
            TransparentHugePages = ThpMode.Always,
        });
        var mm = host.CreateMm(0, host.Reclaim.CreateCgroup("vm", 900));
        var start = MapAligned(mm, 3);
        Stamp(mm, start, Frames, seed: 1);
        Assert.That(mm.ThpStats.HugeLeaves, Is.EqualTo(1), "the first 2 MiB is one huge page");

        Stamp(mm, start + HugeBytes, 2 * Frames, seed: 2); // more than the limit: reclaim must evict

        Assert.That(mm.ThpStats.ThpSplitPmd, Is.GreaterThanOrEqualTo(1), "reclaim split the huge page it evicted from");
        Assert.That(host.Reclaim.Area!.GetStats().Pswpout, Is.GreaterThan(0));
        Assert.That(Unstamped(mm, start, Frames, seed: 1), Is.Empty, "the first huge page's data came back from swap");
        Assert.That(Unstamped(mm, start + HugeBytes, 2 * Frames, seed: 2), Is.Empty);
        AssertConsistent(host);
    }

    [Test]
    public void Aging_a_huge_page_asks_its_leaf_once_and_shares_the_answer_with_every_subpage()
    {
        using var host = ThpHosts.Create();
        var mm = host.CreateMm();
        var start = MapAligned(mm, 1);
        Stamp(mm, start, Frames, seed: 3);
        var head = mm.PageTable.ReadPmd(start).Pfn;

        Assert.That(host.Reclaim.FolioReferenced(head, out var complete), Is.EqualTo(1), "the leaf was young");
        Assert.That(complete, Is.True);
        Assert.That(mm.PageTable.ReadPmd(start).IsAccessed, Is.False, "the first frame's look cleared the leaf's accessed bit");
        Assert.That(host.Reclaim.FolioReferenced(head + 7UL, out _), Is.EqualTo(1), "a subpage got the shared answer");
        Assert.That(host.Reclaim.FolioReferenced(head + 7UL, out _), Is.Zero, "and used it up");
        Assert.That(host.Reclaim.FolioReferenced(head, out _), Is.Zero, "not touched since");
        mm.Read(start + (9 * Page), new byte[1]);
        Assert.That(host.Reclaim.FolioReferenced(head + 9UL, out _), Is.EqualTo(1), "a new access sets the leaf's bit again");
        Assert.That(mm.ThpStats.ThpSplitPmd, Is.Zero, "aging never splits");
        AssertConsistent(host);
    }
}
