using Hypervisor.Vmm.Devices;

namespace Hypervisor.Vmm.Tests.Devices;

public sealed class PicStubTests
{
    private DeviceBus _bus = null!;
    private PicStub _pic = null!;

    [SetUp]
    public void SetUp()
    {
        _bus = new DeviceBus();
        _pic = new PicStub();
        _pic.Attach(_bus);
    }

    [Test]
    public void StandardRemapSequenceRecordsVectorBasesAndMasks()
    {
        // The classic remap: ICW1 (edge, cascade, ICW4), ICW2 vector base, ICW3 cascade, ICW4 8086 mode, OCW1 masks.
        _bus.WritePort(0x20, 1, 0x11);
        _bus.WritePort(0xA0, 1, 0x11);
        _bus.WritePort(0x21, 1, 0x20);
        _bus.WritePort(0xA1, 1, 0x28);
        _bus.WritePort(0x21, 1, 0x04);
        _bus.WritePort(0xA1, 1, 0x02);
        _bus.WritePort(0x21, 1, 0x01);
        _bus.WritePort(0xA1, 1, 0x01);
        Assert.That(_pic.Initialized, Is.True);

        _bus.WritePort(0x21, 1, 0xFB);
        _bus.WritePort(0xA1, 1, 0xFF);

        Assert.That(_pic.MasterVectorBase, Is.EqualTo(0x20));
        Assert.That(_pic.SlaveVectorBase, Is.EqualTo(0x28));
        Assert.That(_bus.ReadPort(0x21, 1), Is.EqualTo(0xFBu));
        Assert.That(_bus.ReadPort(0xA1, 1), Is.EqualTo(0xFFu));
        Assert.That(_pic.MasterMask, Is.EqualTo(0xFB));
        Assert.That(_pic.SlaveMask, Is.EqualTo(0xFF));
    }

    [Test]
    public void MaskWritesWithoutInitialisationAreOcw1()
    {
        _bus.WritePort(0x21, 1, 0xFF);

        Assert.That(_bus.ReadPort(0x21, 1), Is.EqualTo(0xFFu));
        Assert.That(_pic.Initialized, Is.False);
    }

    [Test]
    public void Icw1ClearsTheMaskAndIcwsDoNotChangeIt()
    {
        _bus.WritePort(0x21, 1, 0xFF);
        _bus.WritePort(0x20, 1, 0x11);
        Assert.That(_bus.ReadPort(0x21, 1), Is.Zero);

        _bus.WritePort(0x21, 1, 0x20);
        _bus.WritePort(0x21, 1, 0x04);
        _bus.WritePort(0x21, 1, 0x01);

        Assert.That(_pic.MasterMask, Is.Zero);
    }

    [Test]
    public void WithoutIcw4TheSequenceEndsAfterIcw3()
    {
        _bus.WritePort(0x20, 1, 0x10);
        _bus.WritePort(0x21, 1, 0x08);
        _bus.WritePort(0x21, 1, 0x04);
        _bus.WritePort(0x21, 1, 0xFE);

        Assert.That(_pic.MasterMask, Is.EqualTo(0xFE));
        Assert.That(_pic.MasterVectorBase, Is.EqualTo(0x08));
    }

    [Test]
    public void EoiCommandsAreCountedAndCommandPortReadsZero()
    {
        _bus.WritePort(0x20, 1, 0x20);
        _bus.WritePort(0xA0, 1, 0x20);
        _bus.WritePort(0x20, 1, 0x0B); // OCW3: read ISR

        Assert.That(_pic.EoiCount, Is.EqualTo(2));
        Assert.That(_bus.ReadPort(0x20, 1), Is.Zero);
        Assert.That(_pic.MasterMask, Is.Zero, "OCW2/OCW3 do not touch the mask");
    }

    [Test]
    public void WideReadOfCommandAndDataPorts()
    {
        _bus.WritePort(0xA1, 1, 0x5A);

        Assert.That(_bus.ReadPort(0xA0, 2), Is.EqualTo(0x5A00u));
    }

    [Test]
    public void OwnsExactlyItsFourPorts()
    {
        Assert.That(new ushort[] { 0x20, 0x21, 0xA0, 0xA1 }.Select(_bus.PortOwner), Is.All.SameAs(_pic));
        Assert.That(_bus.PortOwner(0x22), Is.Null);
        Assert.That(_bus.PortOwner(0xA2), Is.Null);
    }
}
