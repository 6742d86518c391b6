using Hypervisor.Vmm.Devices;

namespace Hypervisor.Vmm.Tests.Devices;

public sealed class VmStopSignalTests
{
    [Test]
    public void FirstRequestWinsAndRaisesTheEventOnce()
    {
        var signal = new VmStopSignal();
        var raised = new List<VmStop>();
        signal.Stopped += raised.Add;

        Assert.That(signal.Post(VmStop.PowerOff("a")), Is.True);
        Assert.That(signal.Post(VmStop.Shutdown(3, "b")), Is.False);

        Assert.That(signal.Request, Is.EqualTo(VmStop.PowerOff("a")));
        Assert.That(raised, Is.EqualTo(new[] { VmStop.PowerOff("a") }));
    }

    [Test]
    public void NothingRequestedAtFirst()
    {
        var signal = new VmStopSignal();

        Assert.That(signal.Request, Is.Null);
        Assert.That(signal.IsStopRequested, Is.False);
    }

    [Test]
    public void StopDescribesItself()
    {
        Assert.That(VmStop.Shutdown(0, "isa-debug-exit").ToString(), Is.EqualTo("Shutdown (exit status 1) requested by isa-debug-exit"));
        Assert.That(VmStop.PowerOff("acpi").ExitStatus, Is.Zero);
    }
}
