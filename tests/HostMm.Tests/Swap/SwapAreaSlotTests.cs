using Hypervisor.HostMm.Swap;
using Hypervisor.Notifier;

namespace Hypervisor.HostMm.Tests.Swap;

/// <summary>swap_map rules, clusters and totals.</summary>
public sealed class SwapAreaSlotTests
{
    private static SwapArea NewArea(ulong slots) => new(new ZramSwapDevice(slots * 4096));

    [Test]
    public void EverySlotButTheHeader_IsAllocatedOnce_ThenSwapIsFull()
    {
        const ulong slots = 1300; // three clusters, the last one partial
        using var area = NewArea(slots);
        var seen = new HashSet<ulong>();
        while (area.TryAllocate(out var slot))
        {
            Assert.That(slot, Is.InRange(1UL, slots - 1));
            Assert.That(seen.Add(slot), Is.True, $"slot {slot} handed out twice");
            Assert.That(area.GetUsage(slot), Is.EqualTo(new SwapSlotUsage(SwapSlotUsage.HasCacheFlag)));
        }

        var stats = area.GetStats();
        Assert.Multiple(() =>
        {
            Assert.That(seen, Has.Count.EqualTo((int)slots - 1));
            Assert.That(area.GetUsage(0).IsBad, Is.True);
            Assert.That(stats.TotalSlots, Is.EqualTo(slots - 1));
            Assert.That(stats.FreeSlots, Is.Zero);
            Assert.That(stats.FullClusters, Is.EqualTo(3));
            Assert.That(stats.AllocationFailures, Is.EqualTo(1));
            Assert.That(area.VmSwapFull, Is.True);
            Assert.That(area.Audit(), Is.Null);
        });
    }

    [Test]
    public void SlotLife_AllocateDuplicateUncacheFree_AsLinux()
    {
        using var area = NewArea(1024);
        Assert.That(area.TryAllocate(out var slot), Is.True);
        area.Duplicate(slot); // two PTEs (fork-shared) become swap entries
        area.Duplicate(slot);
        Assert.That(area.GetUsage(slot).MapCount, Is.EqualTo(2));
        Assert.That(area.ClearCache(slot), Is.False, "written and dropped from the swap cache; two PTEs still refer");
        Assert.That(area.GetUsage(slot), Is.EqualTo(new SwapSlotUsage(2)));
        Assert.That(area.TrySetCache(slot), Is.EqualTo(SwapCachePrepareResult.Prepared), "swap-in takes HAS_CACHE");
        Assert.That(area.TrySetCache(slot), Is.EqualTo(SwapCachePrepareResult.AlreadyCached), "a second fault finds it taken");
        Assert.That(area.FreeReference(slot), Is.False);
        Assert.That(area.FreeReference(slot), Is.False, "cached: still allocated");
        Assert.That(area.GetUsage(slot), Is.EqualTo(new SwapSlotUsage(SwapSlotUsage.HasCacheFlag)));
        Assert.That(area.ClearCache(slot), Is.True, "the last owner frees the slot");
        Assert.That(area.GetUsage(slot).IsFree, Is.True);
        Assert.That(area.TrySetCache(slot), Is.EqualTo(SwapCachePrepareResult.SlotFree), "a stale swap entry");
        Assert.That(area.FreeSlots, Is.EqualTo(1023));
        Assert.That(area.GetStats().SlotsFreed, Is.EqualTo(1));
        Assert.That(area.Audit(), Is.Null);
    }

    [Test]
    public void BrokenRules_ThrowSwapSlotStateException_NotAnInputError()
    {
        using var area = NewArea(1024);
        area.TryAllocate(out var slot);
        var free = slot + 1;
        var checks = new (string What, TestDelegate Call)[]
        {
            ("free a reference of a cached slot with none", () => area.FreeReference(slot)),
            ("free a reference of a free slot", () => area.FreeReference(free)),
            ("duplicate a free slot", () => area.Duplicate(free)),
            ("clear cache of a free slot", () => area.ClearCache(free)),
            ("write a slot not owned", () => area.Write(free, new byte[4096])),
            ("read a slot not written", () => area.Read(slot, new byte[4096])),
            ("mark an allocated slot bad", () => area.MarkBad(slot)),
        };
        foreach (var (what, call) in checks)
        {
            var ex = Assert.Throws<SwapSlotStateException>(call, what)!;
            Assert.That(ex, Is.Not.InstanceOf<IInputError>(), what);
            Assert.That(ex.Message, Does.Contain($"0x{ex.Slot:x}"), what);
        }

        Assert.That(() => area.Duplicate(0), Throws.TypeOf<ArgumentOutOfRangeException>().With.Message.Contains("header"));
        Assert.That(() => area.Duplicate(1024), Throws.TypeOf<ArgumentOutOfRangeException>());
    }

    [Test]
    public void MapCount_OverflowsAtTheMaximum()
    {
        using var area = NewArea(1024);
        area.TryAllocate(out var slot);
        for (var i = 0; i < SwapArea.MaxMapCount; i++)
        {
            area.Duplicate(slot);
        }

        var ex = Assert.Throws<SwapSlotStateException>(() => area.Duplicate(slot))!;
        Assert.That(ex.Message, Does.Contain("overflow"));
        Assert.That(area.GetUsage(slot).MapCount, Is.EqualTo(SwapArea.MaxMapCount));
    }

    [Test]
    public void AllocateBatch_HandsOutContiguousSlotsFromOneCluster()
    {
        using var area = NewArea(4096);
        var slots = new ulong[32];
        Assert.That(area.AllocateBatch(slots), Is.EqualTo(32));
        Assert.That(slots, Is.EqualTo(Enumerable.Range(1, 32).Select(i => (ulong)i)), "a fresh area starts at slot 1, after the header");
        var stats = area.GetStats();
        Assert.That(stats.NonFullClusters, Is.EqualTo(1));
        Assert.That(stats.FreeClusters, Is.EqualTo(7));
    }

    [Test]
    public void AllocateBatch_ReturnsFewerWhenSwapRunsOut()
    {
        using var area = NewArea(100);
        var slots = new ulong[150];
        Assert.That(area.AllocateBatch(slots), Is.EqualTo(99));
        Assert.That(area.FreeSlots, Is.Zero);
    }

    [Test]
    public void FreedSlotsAreReused_AndClustersMoveBetweenLists()
    {
        using var area = NewArea(1024); // clusters 0 (511 usable) and 1 (512)
        var slots = new ulong[1023];
        area.AllocateBatch(slots);
        Assert.That(area.GetStats().FullClusters, Is.EqualTo(2));
        area.ClearCache(700);
        Assert.That(area.GetStats().NonFullClusters, Is.EqualTo(1));
        Assert.That(area.TryAllocate(out var again), Is.True);
        Assert.That(again, Is.EqualTo(700UL));
        for (var s = 512UL; s < 1024; s++)
        {
            area.ClearCache(s);
        }

        var stats = area.GetStats();
        Assert.Multiple(() =>
        {
            Assert.That(stats.FreeClusters, Is.EqualTo(1));
            Assert.That(stats.FullClusters, Is.EqualTo(1));
            Assert.That(area.VmSwapFull, Is.False, "exactly half used is not 'more than half'");
            Assert.That(area.Audit(), Is.Null);
        });
    }

    [Test]
    public void VmSwapFull_IsMoreThanHalfUsed()
    {
        using var area = NewArea(101); // 100 usable
        var slots = new ulong[50];
        area.AllocateBatch(slots);
        Assert.That(area.VmSwapFull, Is.False);
        area.TryAllocate(out _);
        Assert.That(area.VmSwapFull, Is.True);
        Assert.That(area.GetStats().VmSwapFull, Is.True);
    }

    [Test]
    public void MarkBad_TakesAFreeSlotOutOfTheArea()
    {
        using var area = NewArea(64);
        area.MarkBad(5);
        var seen = new List<ulong>();
        while (area.TryAllocate(out var slot))
        {
            seen.Add(slot);
        }

        Assert.Multiple(() =>
        {
            Assert.That(seen, Does.Not.Contain(5UL));
            Assert.That(seen, Has.Count.EqualTo(62));
            Assert.That(area.TotalSlots, Is.EqualTo(62));
            Assert.That(area.GetStats().BadSlots, Is.EqualTo(1));
            Assert.That(area.Audit(), Is.Null);
        });
    }

    [Test]
    public void FreeingASlot_DiscardsItOnTheDevice_SoZramMemoryIsFreed()
    {
        var zram = new ZramSwapDevice(1024 * 4096);
        using var area = new SwapArea(zram);
        var slots = new ulong[100];
        area.AllocateBatch(slots);
        foreach (var slot in slots)
        {
            area.Write(slot, SwapPages.Make(SwapPageKind.Random, (int)slot));
            area.Duplicate(slot);
            area.ClearCache(slot);
        }

        Assert.That(zram.GetZramStats().MemoryUsedBytes, Is.GreaterThan(100 * 4096));
        foreach (var slot in slots)
        {
            Assert.That(area.FreeReference(slot), Is.True);
        }

        Assert.That(zram.GetZramStats().PagesStored, Is.Zero);
        Assert.That(zram.GetZramStats().MemoryUsedBytes, Is.Zero);
    }

    [Test]
    public void DisposingTheArea_DisposesAnOwnedDevice_AndDeletesATemporaryFile()
    {
        var area = SwapFactory.CreateArea(new SwapOptions { SizeBytes = 64 * 4096 });
        var path = ((FileSwapDevice)area.Device).Path;
        Assert.That(File.Exists(path), Is.True);
        area.Dispose();
        Assert.That(File.Exists(path), Is.False);
        Assert.That(() => area.TryAllocate(out _), Throws.TypeOf<ObjectDisposedException>());
    }
}
