using Hypervisor.HostMm.Frames;
using Hypervisor.HostMm.Reclaim;
using Hypervisor.HostMm.Vmas;
using Hypervisor.Notifier;

namespace Hypervisor.HostMm.Tests.Reclaim;

/// <summary>Reclaim's put-back of a frame it had isolated.</summary>
public class PutBackTests
{
    [Test]
    public void A_frame_whose_charge_moved_away_while_reclaim_held_it_goes_back_on_no_list()
    {
        // Regression (found by hv demo stress): a huge page migration handed an old frame's charge to its copy while
        // reclaim held the frame isolated; reclaim put it back on the cgroup's list it had taken it from, the frame now
        // named the root's, and its release unlinked it from the root's list under the root's lock, splicing the
        // cgroup's frames into the root's list.
        using var host = new Host(new HostOptions { Memory = new HostMemoryOptions { TotalBytes = 64UL << 20, AuditFreedFrames = true } });
        var cgroup = host.Reclaim.CreateCgroup("vm", 4096);
        var mm = host.CreateMm(0, cgroup);
        var start = mm.Mmap(4 * Paging.PageSize, Protection.Read | Protection.Write);
        for (var i = 0UL; i < 4; i++)
        {
            mm.Write(start + (i * Paging.PageSize), [1, 2, 3]);
        }

        var pfn = mm.PageTable.Read(start).Pfn;
        Assert.That(host.Memory.Frame(pfn).MemoryCgroupId, Is.EqualTo(cgroup.Id), "charged to the process's cgroup");
        Assert.That(host.Reclaim.TryIsolate(pfn), Is.True);

        // What the migration does meanwhile: the page leaves the page table (its contents and charge go to a copy).
        mm.Munmap(start, Paging.PageSize);
        cgroup.Uncharge(1);
        host.Memory.Frame(pfn).SetMemoryCgroup(0);
        var freeBefore = host.Memory.FreeFrames;
        host.Reclaim.PutBack(pfn, LruList.Inactive);

        Assert.Multiple(() =>
        {
            Assert.That(host.Memory.Frame(pfn).Has(FrameFlags.Lru), Is.False, "an uncharged frame is on no list");
            Assert.That(host.Memory.Frame(pfn).Has(FrameFlags.Isolated), Is.False);
            Assert.That(host.Memory.FreeFrames, Is.EqualTo(freeBefore + 1), "the isolation's reference was the last: the frame is free");
            Assert.That(HostMmAuditor.Check(host), Is.Empty, "no list holds a frame of another cgroup");
        });
        mm.Exit();
        Assert.That(HostMmAuditor.Check(host), Is.Empty, "its release took it off that list");
    }
}
