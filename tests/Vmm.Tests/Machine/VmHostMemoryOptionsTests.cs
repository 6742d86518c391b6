using Hypervisor.HostMm.Reclaim;
using Hypervisor.HostMm.Swap;
using Hypervisor.Vmm.Accel;
using Hypervisor.Vmm.Devices;
using Hypervisor.Vmm.Machine;

namespace Hypervisor.Vmm.Tests.Machine;

/// <summary>The host-memory options of <see cref="VmOptions"/>: their rules, and the cgroup and swap a VM builds from them.</summary>
public sealed class VmHostMemoryOptionsTests
{
    [Test]
    public void TheMinimumIsFourMibOrOneSixtyFourthOfGuestRam()
    {
        Assert.Multiple(() =>
        {
            Assert.That(VmOptions.MinHostMemoryFor(128UL << 20), Is.EqualTo(4UL << 20));
            Assert.That(VmOptions.MinHostMemoryFor(1UL << 30), Is.EqualTo(16UL << 20));
            Assert.That(VmOptions.MinHostMemoryFor((1UL << 30) + 4096), Is.EqualTo((16UL << 20) + 4096), "rounded up to a page");
        });
    }

    [Test]
    public void HostMemoryBelowTheMinimumNamesTheValueAndTheRule()
    {
        var options = new VmOptions { MemoryBytes = 1UL << 30, HostMemoryBytes = 8UL << 20 };

        var error = Assert.Throws<VmOptionsException>(options.Validate)!;

        Assert.Multiple(() =>
        {
            Assert.That(error.Rule, Is.EqualTo(VmOptionRule.HostMemorySize));
            Assert.That(error.ParamName, Is.EqualTo(nameof(VmOptions.HostMemoryBytes)));
            Assert.That(error.Message, Does.Contain("8388608").And.Contain("16384 KiB"));
        });
    }

    [Test]
    public void HostMemoryAboveTheMachinesRamIsRefused()
    {
        var options = new VmOptions { HostMemoryBytes = VmOptions.MaxHostMemoryBytes + 4096 };

        var error = Assert.Throws<VmOptionsException>(options.Validate)!;

        Assert.That(error.Rule, Is.EqualTo(VmOptionRule.HostMemorySize));
    }

    [Test]
    public void HostMemoryThatIsNotWholePagesIsRefused()
    {
        var options = new VmOptions { HostMemoryBytes = (64UL << 20) + 1 };

        Assert.That(Assert.Throws<VmOptionsException>(options.Validate)!.Rule, Is.EqualTo(VmOptionRule.HostMemorySize));
    }

    [TestCaseSource(nameof(OptionsWithoutHostMemory))]
    public void SwapOptionsWithoutHostMemoryAreRefused(VmOptions options, string name)
    {
        var error = Assert.Throws<VmOptionsException>(options.Validate)!;

        Assert.Multiple(() =>
        {
            Assert.That(error.Rule, Is.EqualTo(VmOptionRule.NeedsHostMemory));
            Assert.That(error.ParamName, Is.EqualTo(name));
            Assert.That(error.Message, Does.Contain(nameof(VmOptions.HostMemoryBytes)));
        });
    }

    [TestCase(-0.1)]
    [TestCase(1.0)]
    [TestCase(double.NaN)]
    public void ASwapErrorRateOutsideZeroToOneIsRefused(double rate)
    {
        var options = new VmOptions { HostMemoryBytes = 64UL << 20, SwapErrorRate = rate };

        Assert.That(Assert.Throws<VmOptionsException>(options.Validate)!.Rule, Is.EqualTo(VmOptionRule.SwapErrorRate));
    }

    [Test]
    public void HostMemoryNeedsTheEmulatedAccelerator()
    {
        var options = new VmOptions { Accelerator = AcceleratorKind.Kvm, HostMemoryBytes = 64UL << 20 };

        var error = Assert.Throws<VmOptionsException>(options.Validate)!;

        Assert.Multiple(() =>
        {
            Assert.That(error.Rule, Is.EqualTo(VmOptionRule.EmulatedOnly));
            Assert.That(error.ParamName, Is.EqualTo(nameof(VmOptions.HostMemoryBytes)));
        });
    }

    [Test]
    public void ASwapSizeBelowTheHeaderAndOnePageIsRefused()
    {
        var options = new VmOptions { HostMemoryBytes = 64UL << 20, Swap = new SwapOptions { Kind = SwapDeviceKind.Zram, SizeBytes = 4096 } };

        var error = Assert.Throws<VmOptionsException>(options.Validate)!;

        Assert.Multiple(() =>
        {
            Assert.That(error.Rule, Is.EqualTo(VmOptionRule.Swap));
            Assert.That(error.Message, Does.Contain("4096").And.Contain("too small"));
        });
    }

    [Test]
    public void TheDefaultSwapHoldsAllOfGuestRam()
    {
        var swap = VmOptions.DefaultSwap(128UL << 20);

        Assert.Multiple(() =>
        {
            Assert.That(swap.Kind, Is.EqualTo(SwapDeviceKind.File));
            Assert.That(swap.Path, Is.Null, "a temporary file, deleted with the VM");
            Assert.That(swap.SizeBytes, Is.EqualTo((128UL << 20) + 4096), "every guest page plus the header page");
        });
    }

    [Test]
    public void AVmWithHostMemoryPutsItsProcessInALimitedCgroupWithTheChosenSwapAndPolicy()
    {
        var options = new VmOptions
        {
            MemoryBytes = 32UL << 20,
            HostMemoryBytes = 8UL << 20,
            Swap = new SwapOptions { Kind = SwapDeviceKind.Zram, SizeBytes = 16UL << 20 },
            SecondaryAging = false,
        };

        using var vm = new Vm(options, new GuestConsole());

        Assert.Multiple(() =>
        {
            Assert.That(vm.Process!.Cgroup.MaxPages, Is.EqualTo(2048));
            Assert.That(vm.Process.Cgroup, Is.Not.SameAs(vm.Host!.Reclaim.Root));
            Assert.That(vm.Host.Reclaim.Area!.Device.Name, Is.EqualTo("zram"));
            Assert.That(vm.Host.Reclaim.Area.TotalSlots, Is.EqualTo(4095));
            Assert.That(vm.Host.Reclaim.Options.SecondaryAging, Is.False);
            Assert.That(vm.Host.Reclaim.Options.Policy, Is.EqualTo(LruPolicy.Classic));
        });
    }

    [Test]
    public void ASwapErrorRateWrapsTheDeviceInFaultInjection()
    {
        var options = new VmOptions
        {
            MemoryBytes = 32UL << 20,
            HostMemoryBytes = 8UL << 20,
            Swap = new SwapOptions { Kind = SwapDeviceKind.Zram, SizeBytes = 16UL << 20 },
            SwapErrorRate = 0.25,
        };

        using var vm = new Vm(options, new GuestConsole());

        Assert.That(vm.Host!.Reclaim.Area!.Device, Is.InstanceOf<FaultInjectingSwapDevice>());
    }

    [Test]
    public void AVmWithoutHostMemoryHasNoSwapAndAnUnlimitedProcess()
    {
        using var vm = new Vm(new VmOptions { MemoryBytes = 32UL << 20 }, new GuestConsole());

        Assert.Multiple(() =>
        {
            Assert.That(vm.Host!.Reclaim.Area, Is.Null);
            Assert.That(vm.Process!.Cgroup, Is.SameAs(vm.Host.Reclaim.Root));
        });
    }

    private static IEnumerable<TestCaseData> OptionsWithoutHostMemory()
    {
        yield return new TestCaseData(new VmOptions { Swap = new SwapOptions() }, nameof(VmOptions.Swap)).SetArgDisplayNames("swap");
        yield return new TestCaseData(new VmOptions { LruPolicy = LruPolicy.MultiGen }, nameof(VmOptions.LruPolicy)).SetArgDisplayNames("lru");
        yield return new TestCaseData(new VmOptions { SecondaryAging = false }, nameof(VmOptions.SecondaryAging)).SetArgDisplayNames("aging");
        yield return new TestCaseData(new VmOptions { SwapErrorRate = 0.1 }, nameof(VmOptions.SwapErrorRate)).SetArgDisplayNames("errors");
    }
}
