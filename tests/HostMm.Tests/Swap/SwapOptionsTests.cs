using Hypervisor.HostMm.Swap;
using Hypervisor.Notifier;

namespace Hypervisor.HostMm.Tests.Swap;

public sealed class SwapOptionsTests
{
    private static IEnumerable<TestCaseData> BadOptions()
    {
        yield return new TestCaseData(new SwapOptions { SizeBytes = 0 }, SwapRule.SizeZero, "swap size 0").SetName("size 0");
        yield return new TestCaseData(new SwapOptions { SizeBytes = 10_000 }, SwapRule.SizeNotPageMultiple, "10000").SetName("size not a page multiple");
        yield return new TestCaseData(new SwapOptions { SizeBytes = 4096 }, SwapRule.SizeTooSmall, "4096").SetName("size of the header alone");
        yield return new TestCaseData(new SwapOptions { SizeBytes = 1UL << 50 }, SwapRule.SizeTooLarge, "1125899906842624").SetName("size past 2^32 slots");
        yield return new TestCaseData(new SwapOptions { Kind = (SwapDeviceKind)7 }, SwapRule.UnknownDeviceKind, "kind 7").SetName("unknown kind");
        yield return new TestCaseData(new SwapOptions { PageCluster = 12 }, SwapRule.PageClusterOutOfRange, "12").SetName("page cluster 12");
        yield return new TestCaseData(new SwapOptions { Kind = SwapDeviceKind.Zram, ZramIncompressibleThreshold = 5000 }, SwapRule.ZramThresholdOutOfRange, "5000").SetName("zram threshold");
        yield return new TestCaseData(new SwapOptions { FaultInjection = new SwapFaultInjection { WriteErrorRate = 2 } }, SwapRule.ErrorRateOutOfRange, "WriteErrorRate 2").SetName("error rate 2");
        yield return new TestCaseData(new SwapOptions { FaultInjection = new SwapFaultInjection { WriteErrorStatus = SwapIoStatus.ChecksumMismatch } }, SwapRule.ErrorRateOutOfRange, "ChecksumMismatch").SetName("write error status");
        yield return new TestCaseData(new SwapOptions { Path = "/proc/version/swap" }, SwapRule.PathNotCreatable, "/proc/version/swap").SetName("path under a file");
    }

    [TestCaseSource(nameof(BadOptions))]
    public void BadOption_IsAnInputError_NamingTheValueAndTheRule(SwapOptions options, SwapRule rule, string value)
    {
        var ex = Assert.Throws<SwapConfigurationException>(() => SwapFactory.CreateArea(options).Dispose())!;
        Assert.Multiple(() =>
        {
            Assert.That(ex.Rule, Is.EqualTo(rule));
            Assert.That(((IInputError)ex).Rule, Is.EqualTo(rule));
            Assert.That(ex, Is.InstanceOf<ArgumentException>());
            Assert.That(ex.Message, Does.Contain(value));
        });
    }

    [Test]
    public void Defaults_AreAOneGibFileAndPageClusterThree()
    {
        var options = new SwapOptions();
        Assert.Multiple(() =>
        {
            Assert.That(options.Kind, Is.EqualTo(SwapDeviceKind.File));
            Assert.That(options.Path, Is.Null);
            Assert.That(options.SizeBytes, Is.EqualTo(1UL << 30));
            Assert.That(options.PageCluster, Is.EqualTo(3));
            Assert.That(SwapFactory.CreateReadahead(options).MaxPages, Is.EqualTo(8));
        });
    }

    [Test]
    public void Factory_BuildsEachDevice()
    {
        using (var file = SwapFactory.CreateArea(new SwapOptions { SizeBytes = 1 << 20 }))
        {
            Assert.That(file.Device, Is.InstanceOf<FileSwapDevice>());
            Assert.That(file.TotalSlots, Is.EqualTo(255));
        }

        using (var zram = SwapFactory.CreateArea(new SwapOptions { Kind = SwapDeviceKind.Zram, SizeBytes = 1 << 20 }))
        {
            Assert.That(zram.Device, Is.InstanceOf<ZramSwapDevice>());
            Assert.That(zram.Device.IsSynchronous, Is.True);
        }

        using var injected = SwapFactory.CreateArea(new SwapOptions
        {
            Kind = SwapDeviceKind.Zram,
            SizeBytes = 1 << 20,
            FaultInjection = new SwapFaultInjection { ReadErrorRate = 0.5 },
        });
        Assert.That(injected.Device, Is.InstanceOf<FaultInjectingSwapDevice>());
        Assert.That(injected.Device.Name, Is.EqualTo("inject(zram)"));
    }
}
