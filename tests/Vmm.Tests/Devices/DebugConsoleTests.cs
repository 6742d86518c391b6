using Hypervisor.Vmm.Devices;

namespace Hypervisor.Vmm.Tests.Devices;

public sealed class DebugConsoleTests
{
    [Test]
    public void BytesWrittenToE9ReachTheConsole()
    {
        using var writer = new StringWriter();
        var console = new GuestConsole(writer);
        var bus = new DeviceBus();
        new DebugConsole(console).Attach(bus);

        foreach (var b in "hello\n"u8.ToArray())
        {
            bus.WritePort(0xE9, 1, b);
        }

        console.Flush();
        Assert.That(writer.ToString(), Is.EqualTo("hello\n"));
        Assert.That(console.Transcript(), Is.EqualTo("hello\n"));
        Assert.That(console.BytesWritten, Is.EqualTo(6));
    }

    [Test]
    public void ReadingE9ReturnsE9()
    {
        var bus = new DeviceBus();
        new DebugConsole(new GuestConsole()).Attach(bus);

        Assert.That(bus.ReadPort(DebugConsole.Port, 1), Is.EqualTo(0xE9u));
    }

    [Test]
    public void WideWriteSendsOnlyTheLowByteToTheOnePortDevice()
    {
        var console = new GuestConsole();
        var bus = new DeviceBus();
        new DebugConsole(console).Attach(bus);

        bus.WritePort(0xE9, 2, 0x4241);

        Assert.That(console.Transcript(), Is.EqualTo("A"));
    }
}
