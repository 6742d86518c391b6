using Hypervisor.HostMm.Swap;
using Hypervisor.HostMm.Vmas;
using static Hypervisor.HostMm.Tests.Reclaim.SwapHosts;

namespace Hypervisor.HostMm.Tests.Reclaim;

/// <summary>
/// Device failures never become wrong data or lost pages: a read that fails or does not match its checksum is a
/// memory failure naming the slot (and a later read may succeed); a write that fails keeps the page resident and dirty,
/// and a later pass writes it.
/// </summary>
public class SwapFailureTests
{
    [TestCase(SwapIoStatus.IoError)]
    [TestCase(SwapIoStatus.ChecksumMismatch)]
    public void A_failed_swap_read_is_a_memory_failure_naming_the_slot_and_a_later_read_succeeds(SwapIoStatus cause)
    {
        using var host = Create(faults: new SwapFaultInjection { Seed = 3 });
        var device = (FaultInjectingSwapDevice)host.Reclaim.Area!.Device;
        var mm = host.CreateMm();
        var start = mm.Mmap(4 * Page, Protection.Read | Protection.Write);
        WritePattern(mm, start, 4, seed: 1);
        mm.Madvise(start, 4 * Page, Advice.PageOut);
        var slot = Hypervisor.HostMm.PageTables.HostPteEncoding.SwapSlotOf(mm.PageTable.Read(start));
        if (cause == SwapIoStatus.IoError)
        {
            device.ReadErrorRate = 1;
        }
        else
        {
            device.CorruptReadRate = 1;
        }

        var error = Assert.Throws<MemoryFailureException>(() => mm.Read(start, new byte[16]))!;

        Assert.That(error.Cause, Is.EqualTo(cause));
        Assert.That(error.Failure.SwapSlot, Is.EqualTo(slot));
        Assert.That(error.Message, Does.Contain($"swap slot {slot}"));
        Assert.That(mm.Stats.MemoryFailureFaults, Is.EqualTo(1));
        Assert.That(host.Reclaim.Stats.MemoryFailures, Is.EqualTo(1));
        Assert.That(SwappedPages(mm, start, 4), Is.EqualTo(4), "nothing was mapped");
        AssertConsistent(host);

        device.ReadErrorRate = 0;
        device.CorruptReadRate = 0;
        Assert.That(CorruptPages(mm, start, 4, seed: 1), Is.Empty, "the slot kept its data; the retry reads it");
        AssertConsistent(host);
    }

    [Test]
    public void A_failed_swap_write_keeps_the_page_resident_and_dirty_and_a_later_pass_writes_it()
    {
        using var host = Create(faults: new SwapFaultInjection { Seed = 4, WriteErrorRate = 1 });
        var device = (FaultInjectingSwapDevice)host.Reclaim.Area!.Device;
        var mm = host.CreateMm();
        var start = mm.Mmap(8 * Page, Protection.Read | Protection.Write);
        WritePattern(mm, start, 8, seed: 2);

        mm.Madvise(start, 8 * Page, Advice.PageOut);

        Assert.That(host.Reclaim.Stats.SwapWriteErrors, Is.EqualTo(8));
        Assert.That(host.Reclaim.Stats.Pswpout, Is.Zero);
        Assert.That(host.Reclaim.Stats.SwapCachedPages, Is.EqualTo(8), "unmapped but resident, dirty, in the swap cache");
        Assert.That(CorruptPages(mm, start, 8, seed: 2), Is.Empty, "faults find the pages in the swap cache");
        AssertConsistent(host);

        device.WriteErrorRate = 0;
        mm.Madvise(start, 8 * Page, Advice.PageOut);

        Assert.That(host.Reclaim.Stats.Pswpout, Is.EqualTo(8));
        Assert.That(host.Reclaim.Stats.SwapCachedPages, Is.Zero);
        Assert.That(CorruptPages(mm, start, 8, seed: 2), Is.Empty);
        AssertConsistent(host);
    }

    [Test]
    public void A_full_swap_device_keeps_pages_resident_and_the_limit_fails_cleanly()
    {
        using var host = Create(swapMegabytes: 1); // 255 usable slots
        var mm = LimitedProcess(host, limitPages: 64);
        var start = mm.Mmap(512 * Page, Protection.Read | Protection.Write);

        var error = Assert.Throws<OutOfMemoryFaultException>(() => WritePattern(mm, start, 512, seed: 3))!;

        var written = (int)((error.Address - start) / Page);
        Assert.That(written, Is.InRange(64 + 200, 64 + 255));
        Assert.That(host.Reclaim.Area!.FreeSlots, Is.LessThan(8));
        Assert.That(() => mm.Read(start, new byte[1]), Throws.TypeOf<OutOfMemoryFaultException>(), "no room to swap a page back in either");
        AssertConsistent(host);

        mm.Cgroup.MaxPages = 1024;
        Assert.That(CorruptPages(mm, start, written, seed: 3), Is.Empty, "with room again, every page written before the failure is intact");
        AssertConsistent(host);
    }
}
