using Hypervisor.Vmm.Devices;

namespace Hypervisor.Vmm.Tests.Devices;

public sealed class PowerOffTests
{
    private VmStopSignal _stop = null!;
    private DeviceBus _bus = null!;
    private PowerOff _device = null!;

    [SetUp]
    public void SetUp()
    {
        _stop = new VmStopSignal();
        _bus = new DeviceBus();
        _device = new PowerOff(_stop);
        _device.Attach(_bus);
    }

    [Test]
    public void SleepEnableWithS5TypeStopsWithStatusZero()
    {
        _bus.WritePort(PowerOff.Port, 2, 0x2000);

        Assert.That(_stop.Request, Is.EqualTo(new VmStop(VmStopReason.PowerOff, 0, "acpi-pm1a-cnt")));
    }

    [Test]
    public void HighByteWriteAloneCanPowerOff()
    {
        _bus.WritePort(PowerOff.Port + 1, 1, 0x20);

        Assert.That(_stop.Request?.Reason, Is.EqualTo(VmStopReason.PowerOff));
    }

    [Test]
    public void SleepTypeWithoutSleepEnableIsStoredAndDoesNotStop()
    {
        _bus.WritePort(PowerOff.Port, 2, 5 << PowerOff.SleepTypeShift);

        Assert.That(_stop.IsStopRequested, Is.False);
        Assert.That(_bus.ReadPort(PowerOff.Port, 2), Is.EqualTo((5u << 10) | 1), "SLP_TYP stored, SCI_EN still set");
    }

    [Test]
    public void SciEnableReadsOneFromResetAndCannotBeCleared()
    {
        var atReset = _bus.ReadPort(PowerOff.Port, 2);
        _bus.WritePort(PowerOff.Port, 2, 0);

        Assert.That((atReset & 1, _bus.ReadPort(PowerOff.Port, 1) & 1), Is.EqualTo((1u, 1u)), "the machine is in ACPI mode (SCI_EN)");
    }

    [Test]
    public void OtherSleepTypesAreIgnored()
    {
        _bus.WritePort(PowerOff.Port, 2, PowerOff.SleepEnable | (1 << PowerOff.SleepTypeShift));

        Assert.That(_stop.IsStopRequested, Is.False);
    }

    [Test]
    public void ConfiguredS5TypeIsHonoured()
    {
        var stop = new VmStopSignal();
        var bus = new DeviceBus();
        new PowerOff(stop, s5SleepType: 5).Attach(bus);

        bus.WritePort(PowerOff.Port, 2, 0x2000);
        Assert.That(stop.IsStopRequested, Is.False, "type 0 is not S5 here");

        bus.WritePort(PowerOff.Port, 2, PowerOff.SleepEnable | (5 << PowerOff.SleepTypeShift));
        Assert.That(stop.IsStopRequested, Is.True);
    }

    [Test]
    public void SleepEnableReadsAsZero()
    {
        _bus.WritePort(PowerOff.Port, 2, PowerOff.SleepEnable | 1);

        Assert.That(_device.Value, Is.EqualTo(1));
    }

    [TestCase(-1)]
    [TestCase(8)]
    public void SleepTypeOutside3BitsIsRejected(int type)
    {
        var ex = Assert.Throws<ArgumentOutOfRangeException>(() => new PowerOff(new VmStopSignal(), type));

        Assert.That(ex!.Message, Does.Contain($"S5 sleep type {type}").And.Contain("0–7"));
    }
}
