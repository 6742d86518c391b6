using Hypervisor.GuestMmu.Mmu;
using Hypervisor.HostMm.Swap;
using Hypervisor.Vmm.Demo.Swap;
using Hypervisor.Vmm.Tests.Support;

namespace Hypervisor.Vmm.Tests.Demo;

/// <summary>
/// <see cref="SwapDemo"/> on small sizes: phase 1 swaps memtest's region out and back with every audit clean and nothing
/// corrupted or lost, on both devices; phase 2 keeps more of the hot set resident with secondary aging than without it.
/// </summary>
public sealed class SwapDemoTests
{
    private static SwapDemoOptions Small(SwapDeviceKind device) => new()
    {
        MemtestGuestBytes = 32UL << 20,
        MemtestHostBytes = 8UL << 20,
        HotMib = 4,
        ColdMib = 12,
        Rounds = 3,
        WorkingSetHostBytes = 10UL << 20,
        SwapDevice = device,
        GuestsFolder = Path.GetDirectoryName(GuestImages.ImagePath("memtest")),
    };

    [TestCase(SwapDeviceKind.File)]
    [TestCase(SwapDeviceKind.Zram)]
    [Category(TestCategories.Guest)]
    public void EveryPageComesBackIntactAndEveryAuditIsClean(SwapDeviceKind device)
    {
        var memtest = new SwapDemo(Small(device)).RunMemtest();

        Assert.Multiple(() =>
        {
            Assert.That(memtest.GuestVerdict, Does.StartWith("memtest: OK"));
            Assert.That(memtest.RegionPages, Is.EqualTo(24 * 256), "memtest covers guest RAM less 8 MiB");
            Assert.That(memtest.GuestCorruptedPages, Is.Zero);
            Assert.That(memtest.HostCorruptedPages, Is.Zero);
            Assert.That(memtest.LostPages, Is.Zero);
            Assert.That(memtest.AuditViolations, Is.Empty);
            Assert.That(memtest.KswapdAudits + memtest.DirectAudits + memtest.ReadBackAudits, Is.EqualTo(memtest.Audits - 1), "every audit but the last follows a reclaim batch");
            Assert.That(memtest.Audits, Is.GreaterThan(10));
            Assert.That(memtest.Reclaim.Pswpout, Is.GreaterThanOrEqualTo(memtest.RegionPages / 2), "most of the region went out to swap");
            Assert.That(memtest.Reclaim.Pswpin, Is.GreaterThanOrEqualTo(memtest.RegionPages / 2), "and came back");
            Assert.That(memtest.Succeeded, Is.True);
        });
    }

    [Test]
    [Category(TestCategories.Guest)]
    public void SecondaryAgingKeepsTheHotSetResident()
    {
        var demo = new SwapDemo(Small(SwapDeviceKind.Zram));
        var on = demo.RunWorkingSet(secondaryAging: true);
        var off = demo.RunWorkingSet(secondaryAging: false);

        Assert.Multiple(() =>
        {
            Assert.That(on.GuestPassed && off.GuestPassed, Is.True, $"{on.GuestVerdict} / {off.GuestVerdict}");
            Assert.That(on.HotPages, Is.EqualTo(4 * 256));
            Assert.That(on.HotResidentAfterColdPass, Has.Count.EqualTo(3));
            Assert.That(on.MeanHotResident, Is.GreaterThan(off.MeanHotResident + 0.2), "the EPT accessed bits keep the hot set resident");
            Assert.That(on.SwapInsAfterFirstRound, Is.LessThan(off.SwapInsAfterFirstRound), "fewer refaults of the hot set");
            Assert.That(on.Reclaim.SecondaryYoungHits, Is.Positive);
        });
    }

    [Test]
    [Category(TestCategories.Guest)]
    public void TheMapTimeDirtyPolicyWritesPagesSwappedInForAReadAgain()
    {
        var demo = new SwapDemo(Small(SwapDeviceKind.Zram));
        var zap = demo.RunDirtyPolicy(DirtyTrackingPolicy.OnZap);
        var map = demo.RunDirtyPolicy(DirtyTrackingPolicy.OnMap);

        Assert.Multiple(() =>
        {
            Assert.That(zap.GuestPassed && map.GuestPassed, Is.True);
            Assert.That(zap.DirtyPropagated, Is.Positive);
            Assert.That(zap.DirtyMarkedOnMap, Is.Zero);
            Assert.That(map.DirtyMarkedOnMap, Is.Positive);
            Assert.That(map.DirtyPropagated, Is.Zero);
            // memtest reads every page back once: under the zap-time policy the swapped-in copies stay clean and are
            // dropped without I/O when evicted again; under the map-time policy most are written a second time.
            Assert.That(map.Pswpout, Is.GreaterThan(zap.Pswpout + (zap.Pswpin / 4)));
        });
    }

    [Test]
    public void ALimitOverAQuarterOfGuestRamIsRefused()
    {
        var exception = Assert.Throws<SwapDemoOptionsException>(() => new SwapDemo(new SwapDemoOptions { MemtestGuestBytes = 64UL << 20, MemtestHostBytes = 32UL << 20 }));

        Assert.That(exception!.Message, Does.Contain("no less than 4x"));
    }

    [Test]
    public void AWorkingSetLimitThatHoldsBothSetsIsRefused()
    {
        var exception = Assert.Throws<SwapDemoOptionsException>(() => new SwapDemo(new SwapDemoOptions { HotMib = 4, ColdMib = 4, WorkingSetHostBytes = 16UL << 20 }));

        Assert.That(exception!.Message, Does.Contain("but not both sets"));
    }

    [Test]
    public void DirectIoWithZramIsRefused()
    {
        var exception = Assert.Throws<SwapDemoOptionsException>(() => new SwapDemo(new SwapDemoOptions { SwapDevice = Hypervisor.HostMm.Swap.SwapDeviceKind.Zram, SwapDirectIo = true }));

        Assert.That(exception!.Message, Does.Contain("--swap-io direct is for a swap file"));
    }

    [Test]
    public void DirectIoInAFolderThatCannotHoldTheSwapFileIsOneErrorLineBeforeAnyPhase()
    {
        var result = Hv.Run("demo", "swap", "--swap", "/nonexistent/dir/guest.swap", "--swap-io", "direct", "--plain");

        CliAssert.OneErrorLine(result, "--swap-io direct: the swap file's folder cannot use direct I/O: no file can be created in '/nonexistent/dir'");
        Assert.That(result.Stdout, Does.Not.Contain("Phase 1"));
    }
}
