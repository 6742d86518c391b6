using Hypervisor.Vmm.Devices;
using Hypervisor.Vmm.Machine;

namespace Hypervisor.Vmm.Tests.Machine;

/// <summary>The one mapping from how a run ended to its QEMU-style status, the guest's code and <c>hv run</c>'s exit code, for every stop kind.</summary>
public sealed class VmExitStatusTests
{
    [TestCase(VmStopKind.Shutdown)]
    [TestCase(VmStopKind.TripleFault)]
    [TestCase(VmStopKind.InternalError)]
    [TestCase(VmStopKind.HostOutOfMemory)]
    [TestCase(VmStopKind.MemoryFailure)]
    public void AStopThatBreaksTheVmIsStatusThreeWithoutAGuestCode(VmStopKind kind)
    {
        Assert.Multiple(() =>
        {
            Assert.That(VmExitStatus.Of(kind, request: null), Is.EqualTo(3));
            Assert.That(VmExitStatus.GuestExitCodeOf(kind, request: null), Is.Null);
            Assert.That(VmExitStatus.ExitCode(VmExitStatus.GuestExitCodeOf(kind, null), VmExitStatus.Of(kind, null)), Is.EqualTo(3));
            Assert.That(VmExitStatus.BreaksTheVm(kind), Is.True);
        });
    }

    [TestCase(VmStopKind.InstructionLimit)]
    [TestCase(VmStopKind.Timeout)]
    [TestCase(VmStopKind.Cancelled)]
    public void ALimitIsStatusFourWithoutAGuestCode(VmStopKind kind)
    {
        Assert.Multiple(() =>
        {
            Assert.That(VmExitStatus.Of(kind, request: null), Is.EqualTo(4));
            Assert.That(VmExitStatus.GuestExitCodeOf(kind, request: null), Is.Null);
            Assert.That(VmExitStatus.BreaksTheVm(kind), Is.False);
        });
    }

    [Test]
    public void AHaltNothingCanWakeIsStatusFiveWithNoGuestCode()
    {
        Assert.Multiple(() =>
        {
            Assert.That(VmExitStatus.Of(VmStopKind.Halted, null), Is.EqualTo(5));
            Assert.That(VmExitStatus.Halted, Is.EqualTo(5));
            Assert.That(VmExitStatus.GuestExitCodeOf(VmStopKind.Halted, null), Is.Null);
            Assert.That(VmExitStatus.ExitCode(VmExitStatus.GuestExitCodeOf(VmStopKind.Halted, null), VmExitStatus.Of(VmStopKind.Halted, null)), Is.EqualTo(5));
        });
    }

    [TestCase(0, 1)]
    [TestCase(7, 15)]
    [TestCase(255, 511)]
    public void ADebugExitIsTheGuestsOwnCodeBesideQemusStatus(byte value, int qemuStatus)
    {
        var request = VmStop.Shutdown(value, "isa-debug-exit");

        Assert.Multiple(() =>
        {
            Assert.That(VmExitStatus.Of(VmStopKind.GuestExit, request), Is.EqualTo(qemuStatus));
            Assert.That(VmExitStatus.GuestExitCodeOf(VmStopKind.GuestExit, request), Is.EqualTo(value));
            Assert.That(VmExitStatus.ExitCode(value, qemuStatus), Is.EqualTo(value));
        });
    }

    [Test]
    public void PowerOffIsCodeAndStatusZero()
    {
        var request = VmStop.PowerOff("acpi-pm");

        Assert.Multiple(() =>
        {
            Assert.That(VmExitStatus.Of(VmStopKind.GuestExit, request), Is.Zero);
            Assert.That(VmExitStatus.GuestExitCodeOf(VmStopKind.GuestExit, request), Is.Zero);
        });
    }

    [Test]
    public void ARunningVmHasNoGuestCodeYet()
    {
        Assert.Multiple(() =>
        {
            Assert.That(VmExitStatus.GuestExitCodeOf(VmStopKind.Running, null), Is.Null);
            Assert.That(VmExitStatus.Of(VmStopKind.Running, null), Is.Zero);
        });
    }

    [Test]
    public void EveryStopKindHasAStatus()
    {
        Assert.That(Enum.GetValues<VmStopKind>().Select(k => VmExitStatus.Of(k, null)), Has.All.InRange(0, 5));
    }
}
