using Hypervisor.HostMm.Swap;
using Hypervisor.HostMm.Vmas;
using static Hypervisor.HostMm.Tests.Reclaim.SwapHosts;

namespace Hypervisor.HostMm.Tests.Reclaim;

/// <summary>
/// Reclaim gathers the dirty pages of a batch whose slots are contiguous into one device write per run, and a run
/// whose write fails keeps every one of its pages resident and dirty in the swap cache.
/// </summary>
public class SwapWriteBatchingTests
{
    [Test]
    public void Paging_out_contiguous_dirty_pages_writes_them_with_one_device_call_and_they_read_back_intact()
    {
        using var host = Create(SwapDeviceKind.File);
        var device = host.Reclaim.Area!.Device;
        var mm = host.CreateMm();
        var start = mm.Mmap(16 * Page, Protection.Read | Protection.Write);
        WritePattern(mm, start, 16, seed: 11);
        var before = device.GetStats();

        mm.Madvise(start, 16 * Page, Advice.PageOut);

        var after = device.GetStats();
        Assert.That(after.PagesWritten - before.PagesWritten, Is.EqualTo(16));
        Assert.That(after.WriteCalls - before.WriteCalls, Is.EqualTo(1), "16 contiguous slots, one positional write");
        Assert.That(host.Reclaim.Stats.Pswpout, Is.EqualTo(16));
        Assert.That(host.Reclaim.Stats.SwapCachedPages, Is.Zero, "every written page was freed");
        AssertConsistent(host);
        Assert.That(CorruptPages(mm, start, 16, seed: 11), Is.Empty);
        AssertConsistent(host);
    }

    [Test]
    public void A_failed_run_write_keeps_every_page_of_the_run_resident_and_dirty_and_a_later_pass_writes_them()
    {
        using var host = Create(SwapDeviceKind.File, faults: new SwapFaultInjection { Seed = 9, WriteErrorRate = 0.25 });
        var device = (FaultInjectingSwapDevice)host.Reclaim.Area!.Device;
        var mm = host.CreateMm();
        var start = mm.Mmap(16 * Page, Protection.Read | Protection.Write);
        WritePattern(mm, start, 16, seed: 12);

        mm.Madvise(start, 16 * Page, Advice.PageOut);

        Assert.That(device.GetInjectionStats().WriteErrors, Is.EqualTo(1), "the run stops at its first injected error");
        Assert.That(host.Reclaim.Stats.SwapWriteErrors, Is.EqualTo(16), "the whole run is kept, not only the failed slot");
        Assert.That(host.Reclaim.Stats.SwapCachedPages, Is.EqualTo(16), "resident in the swap cache, not lost");
        Assert.That(host.Reclaim.Stats.MemoryFailures, Is.Zero);
        AssertConsistent(host);

        device.WriteErrorRate = 0;
        for (var pass = 0; pass < 8 && host.Reclaim.Stats.SwapCachedPages > 0; pass++)
        {
            host.Reclaim.ReclaimCgroup(host.Reclaim.Root, 64);
        }

        Assert.That(host.Reclaim.Stats.SwapCachedPages, Is.Zero, "the retry wrote and freed them");
        Assert.That(CorruptPages(mm, start, 16, seed: 12), Is.Empty, "the kept pages were dirty: their data is what was rewritten");
        AssertConsistent(host);
    }
}
