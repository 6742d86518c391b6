using Hypervisor.HostMm.Swap;

namespace Hypervisor.HostMm.Tests.Swap;

public sealed class FaultInjectingSwapDeviceTests
{
    private const ulong Slots = 256;

    [Test]
    public void SameSeed_SameFaults()
    {
        var first = FaultTrace(42);
        var second = FaultTrace(42);
        Assert.That(second, Is.EqualTo(first));
        Assert.That(FaultTrace(43), Is.Not.EqualTo(first));
        Assert.That(first.Count(line => !line.StartsWith("wok", StringComparison.Ordinal) && !line.StartsWith("rok", StringComparison.Ordinal)), Is.GreaterThan(0), "some faults were injected");
    }

    [Test]
    public void WriteError_IsAStatus_AndThePageIsNotWritten([Values(SwapIoStatus.IoError, SwapIoStatus.DeviceFull)] SwapIoStatus status)
    {
        using var device = new FaultInjectingSwapDevice(
            new ZramSwapDevice(Slots * 4096), new SwapFaultInjection { WriteErrorRate = 1, WriteErrorStatus = status });
        var result = device.Write(7, SwapPages.Make(SwapPageKind.Text, 1));
        Assert.That(result, Is.EqualTo(SwapIoResult.Failed(status, 7)));
        Assert.That(((ZramSwapDevice)device.Inner).GetZramStats().PagesStored, Is.Zero);
        Assert.That(device.GetInjectionStats().WriteErrors, Is.EqualTo(1));
    }

    [Test]
    public void ReadError_IsAnIoErrorNamingTheSlot()
    {
        using var device = new FaultInjectingSwapDevice(new ZramSwapDevice(Slots * 4096), new SwapFaultInjection());
        device.Write(9, SwapPages.Make(SwapPageKind.Text, 1));
        device.ReadErrorRate = 1;
        Assert.That(device.Read(9, new byte[4096]), Is.EqualTo(SwapIoResult.Failed(SwapIoStatus.IoError, 9)));
    }

    [Test]
    public void Corruption_FlipsExactlyOneBit_AndReportsSuccess([Values] bool onWrite)
    {
        using var device = new FaultInjectingSwapDevice(
            new ZramSwapDevice(Slots * 4096),
            new SwapFaultInjection { CorruptWriteRate = onWrite ? 1 : 0, CorruptReadRate = onWrite ? 0 : 1 });
        var page = SwapPages.Make(SwapPageKind.Random, 2);
        Assert.That(device.Write(3, page).IsOk, Is.True);
        var read = new byte[4096];
        Assert.That(device.Read(3, read).IsOk, Is.True);
        var flipped = page.Zip(read, (a, b) => System.Numerics.BitOperations.PopCount((uint)(a ^ b))).Sum();
        Assert.That(flipped, Is.EqualTo(1));
    }

    [Test]
    public void WriteRunWithAFaultInTheMiddle_WritesThePrefixAndNamesTheSlot()
    {
        var inner = new ZramSwapDevice(Slots * 4096);
        using var device = new FaultInjectingSwapDevice(inner, new SwapFaultInjection { Seed = 5, WriteErrorRate = 0.3 });
        var data = SwapPages.MakeRun(16, 3);
        var result = device.WriteRun(10, data);
        Assert.That(result.IsOk, Is.False, "seed 5 at rate 0.3 fails one of 16 pages");
        var written = (int)(result.Slot - 10);
        Assert.That(inner.GetStats().PagesWritten, Is.EqualTo(written));
        var read = new byte[4096];
        for (var i = 0; i < written; i++)
        {
            inner.Read((ulong)(10 + i), read);
            Assert.That(read, Is.EqualTo(data.AsSpan(i * 4096, 4096).ToArray()));
        }
    }

    [TestCase(-0.1)]
    [TestCase(1.5)]
    [TestCase(double.NaN)]
    public void RateOutOfRange_IsRefused(double rate)
    {
        var ex = Assert.Throws<SwapConfigurationException>(() =>
            new FaultInjectingSwapDevice(new ZramSwapDevice(Slots * 4096), new SwapFaultInjection { ReadErrorRate = rate }))!;
        Assert.That(ex.Rule, Is.EqualTo(SwapRule.ErrorRateOutOfRange));
        Assert.That(ex.Message, Does.Contain("ReadErrorRate"));
        using var device = new FaultInjectingSwapDevice(new ZramSwapDevice(Slots * 4096), new SwapFaultInjection());
        Assert.That(() => device.WriteErrorRate = rate, Throws.TypeOf<SwapConfigurationException>());
    }

    private static List<string> FaultTrace(int seed)
    {
        using var device = new FaultInjectingSwapDevice(
            new ZramSwapDevice(Slots * 4096),
            new SwapFaultInjection { Seed = seed, ReadErrorRate = 0.2, WriteErrorRate = 0.2, CorruptReadRate = 0.1, CorruptWriteRate = 0.1 });
        var trace = new List<string>();
        var page = new byte[4096];
        for (var slot = 1UL; slot < 100; slot++)
        {
            SwapPages.Fill(page, SwapPageKind.Text, (int)slot);
            trace.Add("w" + device.Write(slot, page));
            trace.Add("r" + device.Read(slot, page) + Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(page)));
        }

        return trace;
    }
}
