using Hypervisor.Vmm.Devices;

namespace Hypervisor.Vmm.Tests.Devices;

public sealed class Uart16550Tests
{
    private const ushort Thr = 0x3F8;
    private const ushort Ier = 0x3F9;
    private const ushort Iir = 0x3FA;
    private const ushort Lcr = 0x3FB;
    private const ushort Mcr = 0x3FC;
    private const ushort Lsr = 0x3FD;
    private const ushort Msr = 0x3FE;
    private const ushort Scr = 0x3FF;

    private GuestConsole _console = null!;
    private DeviceBus _bus = null!;
    private Uart16550 _uart = null!;

    [SetUp]
    public void SetUp()
    {
        _console = new GuestConsole();
        _bus = new DeviceBus();
        _uart = new Uart16550(_console);
        _uart.Attach(_bus);
    }

    [Test]
    public void ThrWritesGoToTheConsole()
    {
        foreach (var b in "ok\n"u8.ToArray())
        {
            _bus.WritePort(Thr, 1, b);
        }

        Assert.That(_console.Transcript(), Is.EqualTo("ok\n"));
    }

    [Test]
    public void LsrAlwaysReportsTransmitterReady()
    {
        Assert.That(_bus.ReadPort(Lsr, 1), Is.EqualTo(0x60u));
        _bus.WritePort(Thr, 1, (byte)'x');
        Assert.That(_bus.ReadPort(Lsr, 1), Is.EqualTo(0x60u));
    }

    [Test]
    public void QueuedInputSetsDataReadyAndIsReceivedInOrder()
    {
        _uart.EnqueueInput("hi");

        Assert.That(_bus.ReadPort(Lsr, 1) & 1, Is.EqualTo(1u));
        Assert.That(_bus.ReadPort(Thr, 1), Is.EqualTo((uint)'h'));
        Assert.That(_bus.ReadPort(Thr, 1), Is.EqualTo((uint)'i'));
        Assert.That(_bus.ReadPort(Lsr, 1), Is.EqualTo(0x60u), "DR clears when the queue empties");
        Assert.That(_bus.ReadPort(Thr, 1), Is.Zero, "an empty receive buffer reads 0");
    }

    [Test]
    public void InputGivenAtConstructionIsQueued()
    {
        var uart = new Uart16550(new GuestConsole(), input: "abc");

        Assert.That(uart.PendingInput, Is.EqualTo(3));
    }

    [Test]
    public void DlabSelectsTheDivisorLatch()
    {
        _bus.WritePort(Lcr, 1, 0x83); // DLAB + 8N1
        _bus.WritePort(Thr, 1, 0x01); // DLL
        _bus.WritePort(Ier, 1, 0x00); // DLM
        Assert.That(_uart.DivisorLatch, Is.EqualTo(1));
        Assert.That(_bus.ReadPort(Thr, 1), Is.EqualTo(1u));
        Assert.That(_bus.ReadPort(Ier, 1), Is.Zero);

        _bus.WritePort(Lcr, 1, 0x03);
        _bus.WritePort(Thr, 1, (byte)'A');

        Assert.That(_uart.DivisorLatch, Is.EqualTo(1), "THR write with DLAB clear does not touch the latch");
        Assert.That(_console.Transcript(), Is.EqualTo("A"));
        Assert.That(_bus.ReadPort(Lcr, 1), Is.EqualTo(3u));
        Assert.That(_uart.LineControl, Is.EqualTo(3));
    }

    [Test]
    public void DivisorWrittenWithDlabProducesNoConsoleOutput()
    {
        _bus.WritePort(Lcr, 1, 0x80);
        _bus.WritePort(Thr, 1, 0x0C);

        Assert.That(_console.BytesWritten, Is.Zero);
        Assert.That(_uart.DivisorLatch, Is.EqualTo(12));
    }

    [Test]
    public void ScratchAndModemControlAreStored()
    {
        _bus.WritePort(Scr, 1, 0x5A);
        _bus.WritePort(Mcr, 1, 0x0B);

        Assert.That(_bus.ReadPort(Scr, 1), Is.EqualTo(0x5Au));
        Assert.That(_bus.ReadPort(Mcr, 1), Is.EqualTo(0x0Bu));
        Assert.That(_uart.Scratch, Is.EqualTo(0x5A));
        Assert.That(_uart.ModemControl, Is.EqualTo(0x0B));
    }

    [Test]
    public void IerKeepsItsLowFourBits()
    {
        _bus.WritePort(Ier, 1, 0xFF);

        Assert.That(_bus.ReadPort(Ier, 1), Is.EqualTo(0x0Fu));
    }

    [Test]
    public void IirReportsNoInterruptByDefault()
    {
        Assert.That(_bus.ReadPort(Iir, 1), Is.EqualTo(0x01u));
    }

    [Test]
    public void IirIdentifiesThreOnceAfterEnablingItAndFifoBitsAfterFcr()
    {
        _bus.WritePort(Iir, 1, 0x01); // FCR: enable FIFOs
        _bus.WritePort(Ier, 1, 0x02);

        Assert.That(_bus.ReadPort(Iir, 1), Is.EqualTo(0xC2u));
        Assert.That(_bus.ReadPort(Iir, 1), Is.EqualTo(0xC1u), "reading IIR clears the THRE identification");
    }

    [Test]
    public void IirIdentifiesReceivedDataWhenEnabled()
    {
        _bus.WritePort(Ier, 1, 0x01);
        _uart.EnqueueInput("x");

        Assert.That(_bus.ReadPort(Iir, 1), Is.EqualTo(0x04u));
    }

    [Test]
    public void FcrReceiveResetDropsQueuedInput()
    {
        _uart.EnqueueInput("junk");
        _bus.WritePort(Iir, 1, 0x03);

        Assert.That(_uart.PendingInput, Is.Zero);
    }

    [Test]
    public void MsrReportsAConnectedTerminal()
    {
        Assert.That(_bus.ReadPort(Msr, 1), Is.EqualTo(0xB0u));
    }

    [Test]
    public void LoopbackRoutesThrToReceiveAndReflectsMcrInMsr()
    {
        _bus.WritePort(Mcr, 1, 0x1F);
        _bus.WritePort(Thr, 1, 0xAE);

        Assert.That(_console.BytesWritten, Is.Zero);
        Assert.That(_bus.ReadPort(Lsr, 1) & 1, Is.EqualTo(1u));
        Assert.That(_bus.ReadPort(Thr, 1), Is.EqualTo(0xAEu));
        Assert.That(_bus.ReadPort(Msr, 1), Is.EqualTo(0xF0u));
    }

    [Test]
    public void WideReadReturnsConsecutiveRegisters()
    {
        _bus.WritePort(Scr, 1, 0x77);

        Assert.That(_bus.ReadPort(Lsr, 2), Is.EqualTo(0xB060u), "LSR then MSR");
        Assert.That(_bus.ReadPort(Msr, 2), Is.EqualTo(0x77B0u), "MSR then SCR");
    }

    [Test]
    public void LsrIsReadOnly()
    {
        _bus.WritePort(Lsr, 1, 0x00);

        Assert.That(_bus.ReadPort(Lsr, 1), Is.EqualTo(0x60u));
    }

    [Test]
    public void RegistersAtItsBasePort()
    {
        var bus = new DeviceBus();
        var com2 = new Uart16550(new GuestConsole(), basePort: 0x2F8);
        com2.Attach(bus);

        Assert.That(bus.PortOwner(0x2F8), Is.SameAs(com2));
        Assert.That(bus.PortOwner(0x2FF), Is.SameAs(com2));
        Assert.That(bus.PortOwner(0x300), Is.Null);
        Assert.That(com2.Name, Is.EqualTo("uart16550@0x2F8"));
    }

    [Test]
    public void BasePortTooHighIsRejected()
    {
        var ex = Assert.Throws<ArgumentOutOfRangeException>(() => new Uart16550(new GuestConsole(), basePort: 0xFFFC));

        Assert.That(ex!.Message, Does.Contain("0xFFFC").And.Contain("8 ports"));
    }
}
