using System.Buffers.Binary;
using System.Text;
using Hypervisor.Vmm.Devices;

namespace Hypervisor.Vmm.Tests.Devices;

public sealed class FwCfgTests
{
    private DeviceBus _bus = null!;
    private FwCfg _fwCfg = null!;

    [SetUp]
    public void SetUp()
    {
        _bus = new DeviceBus();
        _fwCfg = new FwCfg(cpuCount: 4, ramSize: 256UL << 20);
        _fwCfg.Attach(_bus);
    }

    [Test]
    public void SignatureIsQemu()
    {
        Assert.That(Encoding.ASCII.GetString(ReadItem(FwCfgKey.Signature, 4)), Is.EqualTo("QEMU"));
    }

    [Test]
    public void IdAdvertisesTheTraditionalInterface()
    {
        Assert.That(BinaryPrimitives.ReadUInt32LittleEndian(ReadItem(FwCfgKey.Id, 4)), Is.EqualTo(1u));
    }

    [Test]
    public void CpuCountIs16BitLittleEndian()
    {
        var bytes = ReadItem(FwCfgKey.CpuCount, 4);

        Assert.That(bytes, Is.EqualTo(new byte[] { 4, 0, 0, 0 }), "2 bytes of item, then zeros past its end");
    }

    [Test]
    public void RamSizeIs64BitLittleEndian()
    {
        Assert.That(BinaryPrimitives.ReadUInt64LittleEndian(ReadItem(FwCfgKey.RamSize, 8)), Is.EqualTo(256UL << 20));
    }

    [Test]
    public void ReadsPastTheEndReturnZero()
    {
        var bytes = ReadItem(FwCfgKey.Signature, 8);

        Assert.That(bytes[4..], Is.All.Zero);
    }

    [Test]
    public void UnknownKeyReadsZero()
    {
        Assert.That(ReadItem((FwCfgKey)0x1234, 4), Is.All.Zero);
    }

    [Test]
    public void SelectingAgainRewinds()
    {
        ReadItem(FwCfgKey.Signature, 2);

        Assert.That(Encoding.ASCII.GetString(ReadItem(FwCfgKey.Signature, 4)), Is.EqualTo("QEMU"));
    }

    [Test]
    public void WideDataReadReturnsSuccessiveBytes()
    {
        _bus.WritePort(FwCfg.SelectorPort, 2, (ushort)FwCfgKey.Signature);

        Assert.That(_bus.ReadPort(FwCfg.SelectorPort, 2), Is.EqualTo(0x4551u), "'Q','E' little-endian");
        Assert.That(_fwCfg.Selector, Is.Zero);
    }

    [Test]
    public void DataWritesAreIgnored()
    {
        _bus.WritePort(FwCfg.SelectorPort, 2, (ushort)FwCfgKey.Signature);
        _bus.WritePort(FwCfg.DataPort, 1, 0x00);

        Assert.That(_bus.ReadPort(FwCfg.DataPort, 1), Is.EqualTo((uint)'Q'));
    }

    [Test]
    public void EmptyDirectoryHasCountZero()
    {
        Assert.That(ReadItem(FwCfgKey.FileDirectory, 4), Is.All.Zero);
    }

    [Test]
    public void AddedFileIsListedAndReadable()
    {
        var key = _fwCfg.AddFile("opt/hv/cmdline", "quiet"u8);

        var dir = ReadItem(FwCfgKey.FileDirectory, 4 + 64);
        Assert.That(BinaryPrimitives.ReadUInt32BigEndian(dir), Is.EqualTo(1u));
        Assert.That(BinaryPrimitives.ReadUInt32BigEndian(dir.AsSpan(4)), Is.EqualTo(5u));
        Assert.That(BinaryPrimitives.ReadUInt16BigEndian(dir.AsSpan(8)), Is.EqualTo(key));
        Assert.That(Encoding.ASCII.GetString(dir, 12, 14), Is.EqualTo("opt/hv/cmdline"));
        Assert.That(dir[12 + 14], Is.Zero);
        Assert.That(key, Is.EqualTo((ushort)FwCfgKey.FirstFile));
        Assert.That(Encoding.ASCII.GetString(ReadItem((FwCfgKey)key, 5)), Is.EqualTo("quiet"));
    }

    [Test]
    public void DuplicateFileNameIsRejected()
    {
        _fwCfg.AddFile("etc/x", [1]);

        var ex = Assert.Throws<InvalidFwCfgFileException>(() => _fwCfg.AddFile("etc/x", [2]));

        Assert.That(ex!.Message, Does.Contain("'etc/x'").And.Contain("unique"));
    }

    [TestCase("")]
    [TestCase("a123456789b123456789c123456789d123456789e123456789f12345")]
    public void FileNameLengthIsChecked(string name)
    {
        var ex = Assert.Throws<InvalidFwCfgFileException>(() => _fwCfg.AddFile(name, []));

        Assert.That(ex!.Message, Does.Contain("1 to 55 characters"));
    }

    [Test]
    public void NonAsciiFileNameIsRejected()
    {
        var ex = Assert.Throws<InvalidFwCfgFileException>(() => _fwCfg.AddFile("etc/é", []));

        Assert.That(ex!.Message, Does.Contain("ASCII"));
    }

    [TestCase(0)]
    [TestCase(65536)]
    public void CpuCountOutOfRangeIsRejected(int cpus)
    {
        var ex = Assert.Throws<ArgumentOutOfRangeException>(() => new FwCfg(cpus, 1 << 20));

        Assert.That(ex!.Message, Does.Contain($"CPU count {cpus}"));
    }

    [Test]
    public void ZeroRamIsRejected()
    {
        var ex = Assert.Throws<ArgumentOutOfRangeException>(() => new FwCfg(1, 0));

        Assert.That(ex!.Message, Does.Contain("RAM size 0"));
    }

    private byte[] ReadItem(FwCfgKey key, int length)
    {
        _bus.WritePort(FwCfg.SelectorPort, 2, (ushort)key);
        var bytes = new byte[length];
        for (var i = 0; i < length; i++)
        {
            bytes[i] = (byte)_bus.ReadPort(FwCfg.DataPort, 1);
        }

        return bytes;
    }
}
