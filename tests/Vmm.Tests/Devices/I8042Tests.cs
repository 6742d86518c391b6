using Hypervisor.Vmm.Devices;

namespace Hypervisor.Vmm.Tests.Devices;

public sealed class I8042Tests
{
    private VmStopSignal _stop = null!;
    private DeviceBus _bus = null!;
    private I8042 _kbc = null!;

    [SetUp]
    public void SetUp()
    {
        _stop = new VmStopSignal();
        _bus = new DeviceBus();
        _kbc = new I8042(_stop);
        _kbc.Attach(_bus);
    }

    [Test]
    public void IdleStatusHasNoDataAndTheSystemFlag()
    {
        var status = Status();

        Assert.That(status & 0x03, Is.Zero, "output and input buffers empty");
        Assert.That(status & 0x04, Is.EqualTo(0x04), "system flag: self-test passed at power-on");
        Assert.That(status & 0x10, Is.EqualTo(0x10), "keyboard not inhibited");
    }

    [Test]
    public void SelfTestRepliesPassed()
    {
        Command(0xAA);

        Assert.That(Status() & 0x21, Is.EqualTo(0x01), "a reply from the controller, not the auxiliary port");
        Assert.That(Data(), Is.EqualTo(0x55));
        Assert.That(Status() & 0x01, Is.Zero, "the read emptied the output buffer");
    }

    [Test]
    public void InterfaceTestsReportNoFault()
    {
        Command(0xAB);
        Assert.That(Data(), Is.Zero);
        Command(0xA9);
        Assert.That(Data(), Is.Zero);
    }

    [Test]
    public void ConfigurationByteReadAndWrite()
    {
        Command(0x20);
        Assert.That(Data(), Is.EqualTo(I8042.InitialConfiguration));

        Command(0x60);
        _bus.WritePort(0x60, 1, 0x65);
        Command(0x20);

        Assert.That(Data(), Is.EqualTo(0x65));
        Assert.That(_kbc.Configuration, Is.EqualTo(0x65));
    }

    [Test]
    public void InterfaceDisableCommandsSetConfigurationBits()
    {
        Command(0x60);
        _bus.WritePort(0x60, 1, 0x00);
        Command(0xAD);
        Command(0xA7);
        Assert.That(_kbc.Configuration, Is.EqualTo(0x30), "keyboard (bit 4) and auxiliary (bit 5) clocks disabled");

        Command(0xAE);
        Command(0xA8);
        Assert.That(_kbc.Configuration, Is.Zero);
    }

    [Test]
    public void StatusBit3FollowsTheLastWritesPort()
    {
        Command(0xAD);
        Assert.That(Status() & 0x08, Is.EqualTo(0x08));
        _bus.WritePort(0x60, 1, 0xF4);
        Assert.That(Status() & 0x08, Is.Zero);
    }

    [Test]
    public void AuxiliaryLoopEchoesAsMouseData()
    {
        Command(0xD3);
        _bus.WritePort(0x60, 1, 0x5A);

        Assert.That(Status() & 0x21, Is.EqualTo(0x21), "output full, from the auxiliary port");
        Assert.That(Data(), Is.EqualTo(0x5A));
    }

    [Test]
    public void BytesForAbsentDevicesGetNoReply()
    {
        _bus.WritePort(0x60, 1, 0xF2); // keyboard: identify
        Command(0xD4);
        _bus.WritePort(0x60, 1, 0xF2); // mouse: identify

        Assert.That(Status() & 0x01, Is.Zero);
        Assert.That(_stop.IsStopRequested, Is.False);
    }

    [Test]
    public void PulseCommand0xFEResetsTheMachine()
    {
        Command(I8042.ResetCommand);

        Assert.That(_stop.Request, Is.EqualTo(new VmStop(VmStopReason.Reset, 0, "i8042")));
    }

    [Test]
    public void PulsesThatLeaveTheResetLineAloneDoNotReset()
    {
        Command(0xFF);
        Command(0xF1);

        Assert.That(_stop.IsStopRequested, Is.False);
    }

    [Test]
    public void OutputPortWriteWithResetLineLowResets()
    {
        Command(0xD0);
        Assert.That(Data() & 0x01, Is.EqualTo(0x01), "reset line high (inactive)");
        Command(0xD1);
        _bus.WritePort(0x60, 1, 0x03);
        Assert.That(_stop.IsStopRequested, Is.False);

        Command(0xD1);
        _bus.WritePort(0x60, 1, 0x02);
        Assert.That(_stop.Request?.Reason, Is.EqualTo(VmStopReason.Reset));
    }

    private void Command(byte command) => _bus.WritePort(0x64, 1, command);

    private int Status() => (int)_bus.ReadPort(0x64, 1);

    private int Data() => (int)_bus.ReadPort(0x60, 1);
}
