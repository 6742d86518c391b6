using Hypervisor.HostMm.Swap;
using Hypervisor.HostMm.Vmas;
using static Hypervisor.HostMm.Tests.Reclaim.SwapHosts;

namespace Hypervisor.HostMm.Tests.Reclaim;

/// <summary>
/// Data through swap: pages written under a cgroup limit are swapped out by direct reclaim and read back intact,
/// on both devices; the auditor checks the swap map, swap cache, LRU lists and charges after each scenario.
/// </summary>
public class SwapOutInTests
{
    [Test]
    public void A_process_larger_than_its_limit_keeps_every_page([Values] SwapDeviceKind device)
    {
        using var host = Create(device);
        var mm = LimitedProcess(host, limitPages: 64);
        var start = mm.Mmap(256 * Page, Protection.Read | Protection.Write);

        WritePattern(mm, start, 256, seed: 1);

        Assert.That(mm.Cgroup.UsagePages, Is.LessThanOrEqualTo(64));
        Assert.That(SwappedPages(mm, start, 256), Is.GreaterThan(150), "most pages had to go to swap");
        Assert.That(CorruptPages(mm, start, 256, seed: 1), Is.Empty);
        var stats = host.Reclaim.Stats;
        Assert.That(stats.Pswpout, Is.GreaterThan(150));
        Assert.That(stats.Pswpin, Is.GreaterThan(150));
        Assert.That(stats.PgstealDirect, Is.GreaterThan(0));
        Assert.That(stats.OomFailures, Is.Zero);
        Assert.That(mm.Stats.SwapInFaults + mm.Stats.SwapCacheFaults, Is.GreaterThan(150));
        AssertConsistent(host);
    }

    [Test]
    public void A_process_larger_than_its_limit_keeps_every_page_on_a_direct_io_swap_file()
    {
        Swap.DirectIoSupport.IgnoreUnlessAvailable();
        using var host = Create(SwapDeviceKind.File, directIo: true);
        var mm = LimitedProcess(host, limitPages: 64);
        var start = mm.Mmap(256 * Page, Protection.Read | Protection.Write);

        WritePattern(mm, start, 256, seed: 3);
        mm.Madvise(start, 256 * Page, Advice.PageOut);

        Assert.That(host.Reclaim.Area!.Device.Name, Does.EndWith("(O_DIRECT)"));
        Assert.That(SwappedPages(mm, start, 256), Is.EqualTo(256));
        Assert.That(CorruptPages(mm, start, 256, seed: 3), Is.Empty);
        var stats = host.Reclaim.Stats;
        Assert.That(stats.Pswpout, Is.GreaterThanOrEqualTo(256));
        Assert.That(stats.Pswpin, Is.GreaterThan(150));
        Assert.That(stats.MemoryFailures, Is.Zero);
        AssertConsistent(host);
    }

    [Test]
    public void Pageout_swaps_out_now_and_the_next_read_faults_the_page_back()
    {
        using var host = Create();
        var mm = host.CreateMm();
        var start = mm.Mmap(32 * Page, Protection.Read | Protection.Write);
        WritePattern(mm, start, 32, seed: 2);

        mm.Madvise(start, 32 * Page, Advice.PageOut);

        Assert.That(SwappedPages(mm, start, 32), Is.EqualTo(32));
        Assert.That(mm.Stats.RssPages, Is.Zero);
        Assert.That(mm.Stats.SwapEntries, Is.EqualTo(32));
        Assert.That(host.Reclaim.Stats.Pswpout, Is.EqualTo(32));
        AssertConsistent(host);

        Assert.That(CorruptPages(mm, start, 32, seed: 2), Is.Empty);
        Assert.That(mm.Stats.RssPages, Is.EqualTo(32));
        Assert.That(mm.Stats.SwapEntries, Is.Zero);
        AssertConsistent(host);
    }

    [Test]
    public void A_clean_page_in_the_swap_cache_is_dropped_again_without_a_write()
    {
        using var host = Create();
        var mm = host.CreateMm();
        var start = mm.Mmap(8 * Page, Protection.Read | Protection.Write);
        WritePattern(mm, start, 8, seed: 3);
        mm.Madvise(start, 8 * Page, Advice.PageOut);
        Assert.That(CorruptPages(mm, start, 8, seed: 3), Is.Empty); // read faults keep the clean copy on swap
        var written = host.Reclaim.Stats.Pswpout;

        mm.Madvise(start, 8 * Page, Advice.PageOut);

        Assert.That(host.Reclaim.Stats.Pswpout, Is.EqualTo(written), "nothing was written the second time");
        Assert.That(SwappedPages(mm, start, 8), Is.EqualTo(8));
        Assert.That(CorruptPages(mm, start, 8, seed: 3), Is.Empty);
        AssertConsistent(host);
    }

    [Test]
    public void A_write_after_swap_in_makes_the_page_dirty_so_the_next_pageout_writes_it_again()
    {
        using var host = Create();
        var mm = host.CreateMm();
        var start = mm.Mmap(4 * Page, Protection.Read | Protection.Write);
        WritePattern(mm, start, 4, seed: 4);
        mm.Madvise(start, 4 * Page, Advice.PageOut);
        Assert.That(CorruptPages(mm, start, 4, seed: 4), Is.Empty);

        WritePattern(mm, start, 4, seed: 5);
        mm.Madvise(start, 4 * Page, Advice.PageOut);

        Assert.That(CorruptPages(mm, start, 4, seed: 5), Is.Empty, "the new data came back, not the old copy");
        AssertConsistent(host);
    }

    [Test]
    public void Munmap_dontneed_and_exit_give_every_slot_and_charge_back()
    {
        using var host = Create();
        var area = host.Reclaim.Area!;
        var total = area.FreeSlots;
        var mm = LimitedProcess(host, limitPages: 32);
        var a = mm.Mmap(64 * Page, Protection.Read | Protection.Write);
        var b = mm.Mmap(64 * Page, Protection.Read | Protection.Write);
        WritePattern(mm, a, 64, seed: 6);
        WritePattern(mm, b, 64, seed: 7);
        Assert.That(area.FreeSlots, Is.LessThan(total));

        mm.Munmap(a, 64 * Page);
        mm.Madvise(b, 32 * Page, Advice.DontNeed);
        AssertConsistent(host);
        var zero = new byte[Page];
        mm.Read(b, zero);
        Assert.That(zero.All(x => x == 0), Is.True, "MADV_DONTNEED on a swapped page reads back zeroes");
        var kept = 0;
        for (var page = 32; page < 64; page++)
        {
            var buffer = new byte[Page];
            mm.Read(b + ((ulong)page * Page), buffer);
            kept += buffer.AsSpan().SequenceEqual(PageData(page, 7)) ? 1 : 0;
        }

        Assert.That(kept, Is.EqualTo(32), "the pages after the MADV_DONTNEED range keep their data");

        mm.Exit();

        Assert.That(area.FreeSlots, Is.EqualTo(total), "every slot is free again");
        Assert.That(host.Reclaim.Stats.SwapCachedPages, Is.Zero);
        Assert.That(mm.Cgroup.UsagePages, Is.Zero, "every charge was returned");
        AssertConsistent(host);
    }

    [Test]
    public void Without_swap_an_allocation_over_the_limit_fails_as_out_of_memory_and_loses_nothing()
    {
        using var host = new Host(new HostOptions { Memory = new Hypervisor.HostMm.Frames.HostMemoryOptions { TotalBytes = 64UL << 20, AuditFreedFrames = true } });
        var mm = LimitedProcess(host, limitPages: 16);
        var start = mm.Mmap(32 * Page, Protection.Read | Protection.Write);
        WritePattern(mm, start, 16, seed: 8);

        var error = Assert.Throws<OutOfMemoryFaultException>(() => mm.Write(start + (16 * Page), new byte[1]))!;

        Assert.That(error.Address, Is.EqualTo(start + (16 * Page)));
        Assert.That(mm.Cgroup.Stats.OomEvents, Is.EqualTo(1));
        Assert.That(CorruptPages(mm, start, 16, seed: 8), Is.Empty);
        AssertConsistent(host);
    }

    [Test]
    public void Fork_shared_pages_swap_out_once_and_fault_back_into_either_process()
    {
        using var host = Create();
        var parent = host.CreateMm();
        var start = parent.Mmap(16 * Page, Protection.Read | Protection.Write);
        WritePattern(parent, start, 16, seed: 9);
        var child = parent.Fork();

        parent.Madvise(start, 16 * Page, Advice.PageOut); // shared pages: pageout skips them (mapcount 2)
        Assert.That(SwappedPages(parent, start, 16), Is.Zero, "MADV_PAGEOUT leaves shared pages alone, as Linux");

        var limited = host.Reclaim.CreateCgroup("squeeze", 1);
        Assert.That(host.Reclaim.ReclaimCgroup(host.Reclaim.Root, 64), Is.EqualTo(16), "reclaim finds both mappings of each shared page");
        Assert.That(SwappedPages(parent, start, 16), Is.EqualTo(16));
        Assert.That(SwappedPages(child, start, 16), Is.EqualTo(16));
        Assert.That(host.Reclaim.Stats.Pswpout, Is.EqualTo(16), "each shared page is written once");
        AssertConsistent(host);

        Assert.That(CorruptPages(child, start, 16, seed: 9), Is.Empty);
        Assert.That(CorruptPages(parent, start, 16, seed: 9), Is.Empty);
        AssertConsistent(host);

        WritePattern(child, start, 16, seed: 10); // copy-on-write after swap-in
        Assert.That(CorruptPages(parent, start, 16, seed: 9), Is.Empty, "the parent keeps its data");
        Assert.That(CorruptPages(child, start, 16, seed: 10), Is.Empty);
        Assert.That(limited.UsagePages, Is.Zero);
        child.Exit();
        AssertConsistent(host);
    }
}
