using Hypervisor.Vmm.Devices;

namespace Hypervisor.Vmm.Tests.Devices;

/// <summary>PM1a_EVT_BLK (ACPI 6 §4.8.3.1): PM1_STS write-1-to-clear at 0x600, PM1_EN at 0x602, and the SCI they drive.</summary>
public sealed class AcpiPm1EventTests
{
    private DeviceBus _bus = null!;
    private AcpiPm1Event _device = null!;
    private List<bool> _sci = null!;

    [SetUp]
    public void SetUp()
    {
        _bus = new DeviceBus();
        _device = new AcpiPm1Event();
        _sci = [];
        _device.SciLine = _sci.Add;
        _device.Attach(_bus);
    }

    [Test]
    public void StatusBitsClearOnlyWhereOneIsWritten()
    {
        _device.Signal(AcpiPm1Event.PowerButton | AcpiPm1Event.Wake);

        _bus.WritePort(0x600, 2, AcpiPm1Event.Wake);

        Assert.Multiple(() =>
        {
            Assert.That(_bus.ReadPort(0x600, 2), Is.EqualTo((uint)AcpiPm1Event.PowerButton));
            Assert.That(_device.Status, Is.EqualTo(AcpiPm1Event.PowerButton));
        });
    }

    [Test]
    public void WritingZeroLeavesStatusAlone()
    {
        _device.Signal(AcpiPm1Event.Rtc);

        _bus.WritePort(0x600, 2, 0);

        Assert.That(_bus.ReadPort(0x600, 2), Is.EqualTo((uint)AcpiPm1Event.Rtc));
    }

    [Test]
    public void EnableIsReadWriteAndADwordCoversBothRegisters()
    {
        _bus.WritePort(0x602, 2, AcpiPm1Event.PowerButton | AcpiPm1Event.Global);
        _device.Signal(AcpiPm1Event.Timer);

        Assert.Multiple(() =>
        {
            Assert.That(_bus.ReadPort(0x602, 2), Is.EqualTo((uint)(AcpiPm1Event.PowerButton | AcpiPm1Event.Global)));
            Assert.That(_bus.ReadPort(0x600, 4), Is.EqualTo(AcpiPm1Event.Timer | ((uint)(AcpiPm1Event.PowerButton | AcpiPm1Event.Global) << 16)));
        });
    }

    [Test]
    public void EnabledStatusAssertsTheSciUntilCleared()
    {
        _device.Signal(AcpiPm1Event.PowerButton);
        Assert.That(_sci, Is.Empty, "not enabled yet");

        _bus.WritePort(0x602, 2, AcpiPm1Event.PowerButton);
        Assert.That(_sci, Is.EqualTo(new[] { true }));

        _bus.WritePort(0x600, 2, AcpiPm1Event.PowerButton);
        Assert.That(_sci, Is.EqualTo(new[] { true, false }));
    }

    [Test]
    public void DisablingDropsTheSci()
    {
        _bus.WritePort(0x602, 2, AcpiPm1Event.Rtc);
        _device.Signal(AcpiPm1Event.Rtc);

        _bus.WritePort(0x603, 1, 0);
        _bus.WritePort(0x602, 1, 0);

        Assert.That(_sci, Is.EqualTo(new[] { true, false }));
    }

    [Test]
    public void SignallingANonStatusBitIsRefused()
    {
        var error = Assert.Throws<ArgumentOutOfRangeException>(() => _device.Signal(1 << 1))!;

        Assert.That(error.Message, Does.Contain("0x0002"));
    }
}
