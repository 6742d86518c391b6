using System.Buffers.Binary;
using Hypervisor.Vmm.Devices;

namespace Hypervisor.Vmm.Tests.Devices;

public sealed class LocalApicStubTests
{
    private const ulong Base = LocalApicStub.BaseAddress;

    private DeviceBus _bus = null!;
    private LocalApicStub _apic = null!;

    [SetUp]
    public void SetUp()
    {
        _bus = new DeviceBus();
        _apic = new LocalApicStub(vcpuId: 3);
        _apic.Attach(_bus);
    }

    [Test]
    public void IdRegisterHoldsTheVcpuIdInTheTopByte()
    {
        Assert.That(Read32(0x20), Is.EqualTo(3u << 24));
    }

    [Test]
    public void VersionRegister()
    {
        Assert.That(Read32(0x30), Is.EqualTo(0x00050014u));
    }

    [TestCase(0x80, 0x20u, 0x20u)]
    [TestCase(0xF0, 0x1FFu, 0x1FFu)]
    [TestCase(0x310, 0x03000000u, 0x03000000u)]
    [TestCase(0xD0, 0x01000000u, 0x01000000u)]
    public void StoredRegistersReadBackWhatWasWritten(int offset, uint value, uint expected)
    {
        Write32(offset, value);

        Assert.That(Read32(offset), Is.EqualTo(expected));
    }

    [Test]
    public void SvrAndDfrHaveTheirResetValues()
    {
        Assert.That(Read32(0xF0), Is.EqualTo(0xFFu));
        Assert.That(Read32(0xE0), Is.EqualTo(0xFFFFFFFFu));
    }

    [Test]
    public void EoiWritesAreCounted()
    {
        Write32(0xB0, 0);
        Write32(0xB0, 0);

        Assert.That(_apic.EoiCount, Is.EqualTo(2));
    }

    [Test]
    public void IcrIsStoredWithDeliveryStatusIdle()
    {
        Write32(0x300, 0x000C4500); // INIT IPI to all-but-self

        Assert.That(Read32(0x300), Is.EqualTo(0x000C4500u));
        Write32(0x300, 0x00001000);
        Assert.That(Read32(0x300) & (1u << 12), Is.Zero);
        Assert.That(_apic.IcrWrites, Is.EqualTo(2));
    }

    [TestCase(0x20)]
    [TestCase(0x30)]
    [TestCase(0x100)]
    [TestCase(0x320)]
    public void ReadOnlyAndUnmodelledRegistersIgnoreWrites(int offset)
    {
        var before = Read32(offset);

        Write32(offset, 0xDEADBEEF);

        Assert.That(Read32(offset), Is.EqualTo(before));
    }

    [TestCase(0x100)]
    [TestCase(0x380)]
    [TestCase(0xFF0)]
    public void OtherRegistersReadZero(int offset)
    {
        Assert.That(Read32(offset), Is.Zero);
    }

    [Test]
    public void ByteReadsSeeTheRegisterLittleEndianAndTheSlotTailIsZero()
    {
        var data = new byte[8];

        _bus.ReadMmio(Base + 0x30, data);

        Assert.That(data, Is.EqualTo(new byte[] { 0x14, 0x00, 0x05, 0x00, 0, 0, 0, 0 }));
    }

    [Test]
    public void PartialWriteMergesIntoTheRegister()
    {
        Write32(0xF0, 0x000000FF);

        _bus.WriteMmio(Base + 0xF1, [0x01]);

        Assert.That(Read32(0xF0), Is.EqualTo(0x1FFu));
    }

    [Test]
    public void EachVcpuNamesItsOwnApic()
    {
        Assert.That(_apic.Name, Is.EqualTo("lapic3"));
        Assert.That(_bus.IsMmio(Base + 0xFFF), Is.True);
        Assert.That(_bus.IsMmio(Base + 0x1000), Is.False);
    }

    [TestCase(-1)]
    [TestCase(256)]
    public void IdOutside8BitsIsRejected(int id)
    {
        var ex = Assert.Throws<ArgumentOutOfRangeException>(() => new LocalApicStub(id));

        Assert.That(ex!.Message, Does.Contain($"APIC id {id}"));
    }

    private uint Read32(int offset)
    {
        var data = new byte[4];
        _bus.ReadMmio(Base + (ulong)offset, data);
        return BinaryPrimitives.ReadUInt32LittleEndian(data);
    }

    private void Write32(int offset, uint value)
    {
        var data = new byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(data, value);
        _bus.WriteMmio(Base + (ulong)offset, data);
    }
}
