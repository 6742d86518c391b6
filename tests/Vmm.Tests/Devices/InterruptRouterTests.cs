using Hypervisor.Vmm.Devices;

namespace Hypervisor.Vmm.Tests.Devices;

public sealed class InterruptRouterTests
{
    private InterruptRouter _router = null!;

    [SetUp]
    public void SetUp()
    {
        _router = new InterruptRouter(4);
        foreach (var apic in _router.Apics)
        {
            apic.WriteRegister(LocalApic.SvrRegister, 0x1FF, 0);
        }
    }

    private LocalApic Apic(int id) => _router.ApicOf(id);

    private static void SendIcr(LocalApic from, uint low, uint destination = 0)
    {
        from.WriteRegister(LocalApic.IcrHighRegister, destination << 24, 0);
        from.WriteRegister(LocalApic.IcrLowRegister, low, 0);
    }

    private int[] Requested(int vector) => [.. _router.Apics.Where(a => a.IsRequested(vector)).Select(a => a.Id)];

    [Test]
    public void PhysicalDestinationReachesThatApicOnly()
    {
        SendIcr(Apic(0), 0x50, destination: 2);

        Assert.Multiple(() =>
        {
            Assert.That(Requested(0x50), Is.EqualTo(new[] { 2 }));
            Assert.That(Apic(0).IpisSent, Is.EqualTo(1));
            Assert.That(Apic(0).ReadRegister(LocalApic.IcrLowRegister) & (1u << 12), Is.Zero, "delivery status reads idle");
        });
    }

    [TestCase(1u << 18, new[] { 1 })]
    [TestCase(2u << 18, new[] { 0, 1, 2, 3 })]
    [TestCase(3u << 18, new[] { 0, 2, 3 })]
    public void ShorthandsSelfAllIncludingAndAllExcluding(uint shorthand, int[] expected)
    {
        SendIcr(Apic(1), shorthand | 0x60, destination: 3);

        Assert.That(Requested(0x60), Is.EqualTo(expected));
    }

    [Test]
    public void PhysicalBroadcastReachesEveryApic()
    {
        SendIcr(Apic(0), 0x61, destination: 0xFF);

        Assert.That(Requested(0x61), Is.EqualTo(new[] { 0, 1, 2, 3 }));
    }

    [Test]
    public void AMissingApicIdIsIgnoredAndCounted()
    {
        SendIcr(Apic(0), 0x62, destination: 9);

        Assert.Multiple(() =>
        {
            Assert.That(Requested(0x62), Is.Empty);
            Assert.That(_router.MissedDestinations, Is.EqualTo(1));
        });
    }

    [Test]
    public void FlatLogicalDestinationMatchesLdrBits()
    {
        for (var id = 0; id < 4; id++)
        {
            Apic(id).WriteRegister(LocalApic.LdrRegister, (1u << id) << 24, 0);
        }

        SendIcr(Apic(0), (1u << 11) | 0x63, destination: 0b1010);

        Assert.That(Requested(0x63), Is.EqualTo(new[] { 1, 3 }));
    }

    [Test]
    public void ClusterLogicalDestinationMatchesClusterAndMember()
    {
        Apic(0).WriteRegister(LocalApic.LdrRegister, 0x11u << 24, 0);
        Apic(1).WriteRegister(LocalApic.LdrRegister, 0x12u << 24, 0);
        Apic(2).WriteRegister(LocalApic.LdrRegister, 0x21u << 24, 0);
        Apic(3).WriteRegister(LocalApic.LdrRegister, 0x22u << 24, 0);
        foreach (var apic in _router.Apics)
        {
            apic.WriteRegister(LocalApic.DfrRegister, 0x0FFFFFFF, 0);
        }

        SendIcr(Apic(0), (1u << 11) | 0x64, destination: 0x23);

        Assert.That(Requested(0x64), Is.EqualTo(new[] { 2, 3 }));
    }

    [Test]
    public void LowestPriorityGoesToTheLowestNumberedMatch()
    {
        for (var id = 0; id < 4; id++)
        {
            Apic(id).WriteRegister(LocalApic.LdrRegister, 0xFFu << 24, 0);
        }

        SendIcr(Apic(0), (1u << 11) | (1u << 8) | 0x65, destination: 0x0C);

        Assert.That(Requested(0x65), Is.EqualTo(new[] { 0 }));
    }

    [Test]
    public void NmiIpiMakesAnNmiPendingOnTheTarget()
    {
        SendIcr(Apic(0), 4u << 8, destination: 1);

        Assert.Multiple(() =>
        {
            Assert.That(Apic(1).NmiPending, Is.True);
            Assert.That(Apic(0).NmiPending, Is.False);
        });
    }

    [Test]
    public void InitThenStartupIsRecordedForAFutureApStart()
    {
        Assert.That(Apic(2).WaitingForStartup, Is.True, "an AP waits for a SIPI from reset");
        SendIcr(Apic(0), (5u << 8) | (1u << 14), destination: 2);          // INIT assert
        SendIcr(Apic(0), (5u << 8) | (1u << 15), destination: 2);          // INIT level de-assert: no effect
        SendIcr(Apic(0), (6u << 8) | 0x9A, destination: 2);                // SIPI, start at 0x9A000
        SendIcr(Apic(0), (6u << 8) | 0x9B, destination: 2);                // the second SIPI of the MP protocol: ignored

        Assert.Multiple(() =>
        {
            Assert.That(Apic(2).InitCount, Is.EqualTo(1));
            Assert.That(Apic(2).StartupCount, Is.EqualTo(1));
            Assert.That(Apic(2).StartupVector, Is.EqualTo(0x9A));
            Assert.That(Apic(2).IsRunning, Is.True);
            Assert.That(_router.Ignored, Is.EqualTo(2), "the de-assert and the second SIPI");
        });
    }

    [Test]
    public void StartupToARunningCpuIsIgnored()
    {
        SendIcr(Apic(1), (6u << 8) | 0x10, destination: 0);

        Assert.Multiple(() =>
        {
            Assert.That(Apic(0).StartupCount, Is.Zero);
            Assert.That(Apic(0).StartupVector, Is.EqualTo(-1));
            Assert.That(_router.Ignored, Is.EqualTo(1));
        });
    }

    [Test]
    public void AllExcludingSelfInitSipiStartsEveryAp()
    {
        SendIcr(Apic(0), (3u << 18) | (5u << 8) | (1u << 14));
        SendIcr(Apic(0), (3u << 18) | (6u << 8) | 0x08);

        Assert.Multiple(() =>
        {
            Assert.That(_router.Apics.Skip(1).Select(a => a.StartupVector), Is.All.EqualTo(0x08));
            Assert.That(Apic(0).StartupVector, Is.EqualTo(-1));
        });
    }

    [Test]
    public void X2ApicPhysicalDestinationIs32Bits()
    {
        var apic = Apic(0);
        Assert.That(apic.TryWriteBaseMsr(apic.BaseMsr | LocalApic.BaseExtd), Is.True);

        Assert.That(apic.TryWriteMsr(0x830, (3UL << 32) | 0x66, 0), Is.True);
        Assert.That(apic.TryWriteMsr(0x830, (0x103UL << 32) | 0x67, 0), Is.True);

        Assert.Multiple(() =>
        {
            Assert.That(Requested(0x66), Is.EqualTo(new[] { 3 }));
            Assert.That(Requested(0x67), Is.Empty, "id 0x103 is missing, not 3");
            Assert.That(_router.MissedDestinations, Is.EqualTo(1));
        });
    }
}
