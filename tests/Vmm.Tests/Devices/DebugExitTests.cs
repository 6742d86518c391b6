using Hypervisor.Vmm.Devices;

namespace Hypervisor.Vmm.Tests.Devices;

public sealed class DebugExitTests
{
    [TestCase(0u, 1)]
    [TestCase(1u, 3)]
    [TestCase(0x10u, 0x21)]
    [TestCase(0xFFu, 0x1FF)]
    public void WriteStopsWithQemuStatus(uint value, int status)
    {
        var stop = new VmStopSignal();
        var bus = new DeviceBus();
        new DebugExit(stop).Attach(bus);

        bus.WritePort(DebugExit.Port, 1, value);

        Assert.That(stop.Request, Is.EqualTo(new VmStop(VmStopReason.Shutdown, status, "isa-debug-exit")));
    }

    [Test]
    public void WideWriteUsesOnlyTheLowByteAsQemusOneByteRegion()
    {
        var stop = new VmStopSignal();
        var bus = new DeviceBus();
        new DebugExit(stop).Attach(bus);

        bus.WritePort(DebugExit.Port, 4, 0x0000_0102);

        Assert.That(stop.Request!.ExitStatus, Is.EqualTo((2 << 1) | 1));
    }

    [Test]
    public void ReadDoesNotStopAndReturnsZero()
    {
        var stop = new VmStopSignal();
        var bus = new DeviceBus();
        new DebugExit(stop).Attach(bus);

        Assert.That(bus.ReadPort(DebugExit.Port, 1), Is.Zero);
        Assert.That(stop.IsStopRequested, Is.False);
    }
}
