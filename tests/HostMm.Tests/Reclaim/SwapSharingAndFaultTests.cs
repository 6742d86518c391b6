using Hypervisor.HostMm.PageTables;
using Hypervisor.HostMm.Swap;
using Hypervisor.HostMm.Vmas;
using static Hypervisor.HostMm.Tests.Reclaim.SwapHosts;

namespace Hypervisor.HostMm.Tests.Reclaim;

/// <summary>
/// Swap slots shared by fork and copy-on-write pages: a write fault straight onto a shared swap entry copies and
/// leaves the other process its data, pages made private by COW swap and come back into each process, a shared slot
/// lives while either process still references it and is freed with the last reference. Device faults at the
/// process level: a full disk during swap-out keeps the page resident and dirty and the background reclaimer writes it
/// later; a page corrupted on its way to the device is a memory failure on every read, never wrong data.
/// </summary>
public class SwapSharingAndFaultTests
{
    [Test]
    public void A_write_fault_on_a_shared_swap_entry_copies_and_the_other_process_keeps_its_data([Values] bool childWrites)
    {
        using var host = Create();
        var parent = host.CreateMm();
        var start = parent.Mmap(8 * Page, Protection.Read | Protection.Write);
        WritePattern(parent, start, 8, seed: 1);
        var child = parent.Fork();
        Assert.That(host.Reclaim.ReclaimCgroup(host.Reclaim.Root, 64), Is.EqualTo(8));
        Assert.That(SwappedPages(parent, start, 8) + SwappedPages(child, start, 8), Is.EqualTo(16));
        var slot = HostPteEncoding.SwapSlotOf(parent.PageTable.Read(start));
        Assert.That(host.Reclaim.Area!.GetUsage(slot).MapCount, Is.EqualTo(2), "both swap PTEs reference the slot");

        var (writer, reader) = childWrites ? (child, parent) : (parent, child);
        WritePattern(writer, start, 8, seed: 2); // each write faults on a swap entry whose slot is shared

        Assert.That(CorruptPages(writer, start, 8, seed: 2), Is.Empty);
        Assert.That(SwappedPages(reader, start, 8), Is.EqualTo(8), "the other process's swap entries are untouched");
        Assert.That(CorruptPages(reader, start, 8, seed: 1), Is.Empty, "and fault back the data from before the writes");
        for (var page = 0; page < 8; page++)
        {
            var at = start + ((ulong)page * Page);
            Assert.That(writer.PageTable.Read(at).Pfn, Is.Not.EqualTo(reader.PageTable.Read(at).Pfn), $"page {page} is private to each process now");
        }

        AssertConsistent(host);
        child.Exit();
        AssertConsistent(host);
    }

    [Test]
    public void Pages_made_private_by_copy_on_write_swap_out_and_fault_back_into_each_process()
    {
        using var host = Create();
        var parent = host.CreateMm();
        var start = parent.Mmap(8 * Page, Protection.Read | Protection.Write);
        WritePattern(parent, start, 8, seed: 3);
        var child = parent.Fork();
        WritePattern(child, start, 8, seed: 4); // COW: the child gets copies; the parent's pages become exclusive again

        parent.Madvise(start, 8 * Page, Advice.PageOut);
        child.Madvise(start, 8 * Page, Advice.PageOut);

        Assert.That(SwappedPages(parent, start, 8), Is.EqualTo(8), "exclusively owned after the COW: MADV_PAGEOUT takes them");
        Assert.That(SwappedPages(child, start, 8), Is.EqualTo(8));
        Assert.That(host.Reclaim.Stats.Pswpout, Is.EqualTo(16), "two copies, two writes each page");
        AssertConsistent(host);

        Assert.That(CorruptPages(child, start, 8, seed: 4), Is.Empty);
        Assert.That(CorruptPages(parent, start, 8, seed: 3), Is.Empty);
        AssertConsistent(host);
        child.Exit();
        parent.Exit();
        Assert.That(host.Reclaim.Area!.FreeSlots, Is.EqualTo(host.Reclaim.Area.TotalSlots), "every slot came back");
        AssertConsistent(host);
    }

    [Test]
    public void A_shared_slot_lives_while_either_process_references_it_and_is_freed_with_the_last_reference()
    {
        using var host = Create();
        var area = host.Reclaim.Area!;
        var parent = host.CreateMm();
        var start = parent.Mmap(4 * Page, Protection.Read | Protection.Write);
        WritePattern(parent, start, 4, seed: 5);
        var child = parent.Fork();
        Assert.That(host.Reclaim.ReclaimCgroup(host.Reclaim.Root, 64), Is.EqualTo(4));
        var slots = Enumerable.Range(0, 4).Select(page => HostPteEncoding.SwapSlotOf(parent.PageTable.Read(start + ((ulong)page * Page)))).ToList();
        var free = area.FreeSlots;

        parent.Munmap(start, 4 * Page);

        Assert.That(area.FreeSlots, Is.EqualTo(free), "the child still references every slot");
        Assert.That(slots.Select(slot => area.GetUsage(slot).MapCount), Is.All.EqualTo(1));
        Assert.That(CorruptPages(child, start, 4, seed: 5), Is.Empty, "the child's data is on them");
        AssertConsistent(host);

        child.Munmap(start, 4 * Page);

        Assert.That(slots.Select(slot => area.GetUsage(slot).IsFree), Is.All.True, "the last reference freed each slot (and its swap-cache copy)");
        Assert.That(area.FreeSlots, Is.EqualTo(area.TotalSlots));
        Assert.That(host.Reclaim.Stats.SwapCachedPages, Is.Zero);
        AssertConsistent(host);
    }

    [Test]
    public void A_full_disk_during_swap_out_keeps_the_page_resident_and_dirty_and_the_background_reclaimer_writes_it_later()
    {
        using var host = Create(SwapDeviceKind.File, faults: new SwapFaultInjection { Seed = 6, WriteErrorRate = 1, WriteErrorStatus = SwapIoStatus.DeviceFull });
        var device = (FaultInjectingSwapDevice)host.Reclaim.Area!.Device;
        var mm = LimitedProcess(host, limitPages: 1024);
        var start = mm.Mmap(16 * Page, Protection.Read | Protection.Write);
        WritePattern(mm, start, 16, seed: 7);

        mm.Madvise(start, 16 * Page, Advice.PageOut);

        Assert.That(host.Reclaim.Stats.SwapWriteErrors, Is.EqualTo(16));
        Assert.That(host.Reclaim.Stats.Pswpout, Is.Zero);
        Assert.That(host.Reclaim.Stats.SwapCachedPages, Is.EqualTo(16), "still in memory (the swap cache), not lost");
        Assert.That(mm.Cgroup.UsagePages, Is.EqualTo(16), "and still charged");
        Assert.That(host.Reclaim.Stats.MemoryFailures, Is.Zero, "a failed write is not a memory failure");
        AssertConsistent(host);

        device.WriteErrorRate = 0;
        mm.Cgroup.MaxPages = 8; // over the limit: the background reclaimer has work
        var stepped = 0;
        while (host.Reclaim.Stats.Pswpout < 8 && stepped++ < 32)
        {
            host.Reclaim.Step(64);
        }

        Assert.That(host.Reclaim.Stats.Pswpout, Is.GreaterThanOrEqualTo(8), "the dirty pages were written on a later pass");
        Assert.That(mm.Cgroup.UsagePages, Is.LessThanOrEqualTo(8));
        AssertConsistent(host);
        mm.Cgroup.MaxPages = 1024;
        Assert.That(CorruptPages(mm, start, 16, seed: 7), Is.Empty);
        AssertConsistent(host);
    }

    [Test]
    public void A_page_corrupted_on_its_way_to_the_device_is_a_memory_failure_on_every_read_never_wrong_data([Values] SwapDeviceKind device)
    {
        using var host = Create(device, faults: new SwapFaultInjection { Seed = 8, CorruptWriteRate = 1 });
        var mm = host.CreateMm();
        var start = mm.Mmap(2 * Page, Protection.Read | Protection.Write);
        WritePattern(mm, start, 2, seed: 9);
        mm.Madvise(start, 2 * Page, Advice.PageOut);
        var slot = HostPteEncoding.SwapSlotOf(mm.PageTable.Read(start));
        Assert.That(host.Reclaim.Stats.Pswpout, Is.EqualTo(2), "the device reported success");

        for (var attempt = 0; attempt < 2; attempt++)
        {
            var error = Assert.Throws<MemoryFailureException>(() => mm.Read(start, new byte[8]))!;
            Assert.That(error.Cause, Is.EqualTo(SwapIoStatus.ChecksumMismatch), $"attempt {attempt}");
            Assert.That(error.Failure.SwapSlot, Is.EqualTo(slot));
            Assert.That(error.Address, Is.EqualTo(start));
        }

        Assert.That(() => mm.Write(start + 8, new byte[8]), Throws.TypeOf<MemoryFailureException>(), "a write needs the old contents too");
        Assert.That(SwappedPages(mm, start, 2), Is.EqualTo(2), "nothing was mapped");
        Assert.That(host.Reclaim.Stats.MemoryFailures, Is.EqualTo(3));
        AssertConsistent(host);

        mm.Munmap(start, 2 * Page);
        Assert.That(host.Reclaim.Area!.GetUsage(slot).IsFree || host.Reclaim.Area.GetUsage(slot).IsBad, Is.True, "unmapping drops the reference");
        AssertConsistent(host);
    }
}
