using Hypervisor.HostMm.Swap;

namespace Hypervisor.HostMm.Tests.Swap;

/// <summary>The swap file with direct I/O: O_DIRECT on its descriptor, frames transferred straight, rules for asking.</summary>
public sealed class DirectIoFileSwapDeviceTests
{
    [Test]
    public void DirectIo_SetsODirectOnTheFile_AndNamesItInTheDeviceName_WhileBufferedDoesNot()
    {
        DirectIoSupport.IgnoreUnlessAvailable();
        using var direct = new FileSwapDevice(null, 64 * 4096, directIo: true);
        using var buffered = new FileSwapDevice(null, 64 * 4096);
        Assert.Multiple(() =>
        {
            Assert.That(direct.IsDirectIo, Is.True);
            Assert.That(direct.Name, Is.EqualTo("file:" + direct.Path + " (O_DIRECT)"));
            Assert.That(buffered.IsDirectIo, Is.False);
            Assert.That(buffered.Name, Is.EqualTo("file:" + buffered.Path));
        });
        if (OperatingSystem.IsLinux())
        {
            Assert.That(DirectIoSupport.IsOpenWithDirectIo(direct.Path), Is.True, "the direct device's descriptor lacks O_DIRECT");
            Assert.That(DirectIoSupport.IsOpenWithDirectIo(buffered.Path), Is.False, "the buffered device's descriptor has O_DIRECT");
        }
    }

    [Test]
    public void GatheredFrames_RoundTripInOneSystemCallEach_WithoutTheBounceBuffer()
    {
        DirectIoSupport.IgnoreUnlessAvailable();
        using var device = new FileSwapDevice(null, 256 * 4096, directIo: true);
        using var source = new NativePages(40, seed: 5);
        using var target = new NativePages(40, seed: 6);
        var data = SwapPages.MakeRun(40, 77);
        source.Load(data);

        Assert.That(device.WriteGather(100, source.Addresses), Is.EqualTo(SwapIoResult.Success));
        Assert.That(device.ReadScatter(100, target.Addresses), Is.EqualTo(SwapIoResult.Success));

        Assert.That(target.ToArray(), Is.EqualTo(data));
        Assert.That(device.IsVectoredIoActive, Is.EqualTo(OperatingSystem.IsLinux()), "direct transfers from frames were refused and fell back");
        var stats = device.GetStats();
        Assert.That((stats.PagesWritten, stats.PagesRead), Is.EqualTo((40L, 40L)));
    }

    [Test]
    public void UnalignedSpans_AreCopiedThroughAnAlignedBuffer_AndReadBackExactly()
    {
        DirectIoSupport.IgnoreUnlessAvailable();
        using var device = new FileSwapDevice(null, 64 * 4096, directIo: true);
        var data = SwapPages.MakeRun(3, 12);
        var unaligned = new byte[data.Length + 1];
        data.CopyTo(unaligned, 1);

        Assert.That(device.WriteRun(10, unaligned.AsSpan(1, data.Length)), Is.EqualTo(SwapIoResult.Success));
        var back = new byte[data.Length + 3];
        Assert.That(device.ReadRun(10, back.AsSpan(3, data.Length)), Is.EqualTo(SwapIoResult.Success));

        Assert.That(back.AsSpan(3, data.Length).ToArray(), Is.EqualTo(data));
        Assert.That(back.AsSpan(0, 3).ToArray(), Is.All.EqualTo(0), "the read wrote outside its span");
    }

    [Test]
    public void AUserPathSwapFile_WrittenBuffered_IsReadBackWithDirectIo()
    {
        DirectIoSupport.IgnoreUnlessAvailable();
        var folder = Directory.CreateTempSubdirectory("hv-direct-swap-");
        try
        {
            var path = Path.Combine(folder.FullName, "guest.swap");
            using (var first = new FileSwapDevice(path, 16 * 4096))
            {
                first.Write(3, SwapPages.Make(SwapPageKind.Random, 3));
            }

            using var reused = new FileSwapDevice(path, 16 * 4096, directIo: true);
            var page = new byte[4096];
            Assert.That(reused.Read(3, page), Is.EqualTo(SwapIoResult.Success));
            Assert.That(page, Is.EqualTo(SwapPages.Make(SwapPageKind.Random, 3)), "a direct read missed what the buffered device wrote");
        }
        finally
        {
            folder.Delete(recursive: true);
        }
    }

    [Test]
    public void DirectIoForZram_IsRefusedNamingTheRule()
    {
        var ex = Assert.Throws<SwapConfigurationException>(() => SwapFactory.CreateDevice(new SwapOptions { Kind = SwapDeviceKind.Zram, DirectIo = true, SizeBytes = 1 << 20 }))!;
        Assert.Multiple(() =>
        {
            Assert.That(ex.Rule, Is.EqualTo(SwapRule.DirectIoNotFile));
            Assert.That(ex.Message, Does.Contain("direct I/O").And.Contain("zram"));
        });
    }

    [Test]
    public void TheProbe_AnswersForTheTempFolder_AndNamesAFolderThatCannotHoldAFile()
    {
        var missing = Path.Combine(Path.GetTempPath(), "hv-no-such-folder-" + Guid.NewGuid().ToString("N"));
        Assert.That(LinuxDirectIo.TryProbe(missing, out var reason), Is.False);
        Assert.That(reason, Does.Contain(missing));
        Assert.That(Directory.Exists(missing), Is.False);

        var before = Directory.GetFiles(Path.GetTempPath(), ".hv-direct-probe-*").Length;
        var available = LinuxDirectIo.TryProbe(Path.GetTempPath(), out var tempReason);
        Assert.That(Directory.GetFiles(Path.GetTempPath(), ".hv-direct-probe-*"), Has.Length.EqualTo(before), "the probe left its file behind");
        if (OperatingSystem.IsLinux() && available)
        {
            Assert.That(tempReason, Is.Empty);
            using var device = new FileSwapDevice(null, 2 * 4096, directIo: true); // what the probe promised
            Assert.That(device.IsDirectIo, Is.True);
        }
        else
        {
            Assert.That(tempReason, Is.Not.Empty, "a refusal names its reason");
        }
    }
}
