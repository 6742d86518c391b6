using Hypervisor.Vmm.Accel.Kvm;
using Hypervisor.Vmm.Cli;
using Hypervisor.Vmm.Devices;

namespace Hypervisor.Vmm.Tests.Accel.Kvm;

/// <summary>
/// The reports of the exits that break the VM, from synthetic kvm_run payloads (no /dev/kvm needed): the detail of
/// KVM_EXIT_FAIL_ENTRY (which this machine's paravirtual KVM never produces) and KVM_EXIT_INTERNAL_ERROR, and the
/// status, exit code and title <c>hv run --accel kvm</c> gives each stop.
/// </summary>
public sealed class KvmExitDetailTests
{
    [TestCase(0x8000_0021UL, 0u, "KVM_EXIT_FAIL_ENTRY: hardware entry failure reason 0x80000021 on cpu 0")]
    [TestCase(ulong.MaxValue, 3u, "KVM_EXIT_FAIL_ENTRY: hardware entry failure reason 0xffffffffffffffff on cpu 3")]
    [TestCase(0UL, 17u, "KVM_EXIT_FAIL_ENTRY: hardware entry failure reason 0x0 on cpu 17")]
    public void FailEntryShowsTheHardwareReasonInHexAndTheCpu(ulong hardwareReason, uint cpu, string detail) =>
        Assert.That(KvmExitDetail.FailEntry(hardwareReason, cpu), Is.EqualTo(detail));

    [TestCase(1u, "instruction emulation failed")]
    [TestCase(2u, "simultaneous exceptions")]
    [TestCase(3u, "unexpected exit while delivering an event")]
    [TestCase(4u, "unexpected exit reason")]
    [TestCase(0u, "unknown suberror")]
    [TestCase(99u, "unknown suberror")]
    public void InternalErrorNamesTheSuberror(uint suberror, string name) =>
        Assert.That(KvmExitDetail.InternalError(suberror, 0, new ulong[KvmRunInternal.MaxData]), Is.EqualTo($"KVM_EXIT_INTERNAL_ERROR: suberror {suberror} ({name})"));

    [Test]
    public void InternalErrorShowsTheFirstNdataWordsInHex()
    {
        var data = new ulong[KvmRunInternal.MaxData];
        data[0] = 0x1;
        data[1] = 0xF4FE_E000_3005_D90F;
        data[2] = 0;
        data[3] = 0x1000;
        data[4] = 0xDEAD;

        var detail = KvmExitDetail.InternalError(1, 4, data);

        Assert.That(detail, Is.EqualTo("KVM_EXIT_INTERNAL_ERROR: suberror 1 (instruction emulation failed), data 0x1 0xf4fee0003005d90f 0x0 0x1000"));
    }

    [Test]
    public void InternalErrorShowsNoMoreWordsThanTheBufferHolds()
    {
        var data = Enumerable.Range(1, KvmRunInternal.MaxData).Select(i => (ulong)i).ToArray();

        var full = KvmExitDetail.InternalError(3, 200, data);
        var shortBuffer = KvmExitDetail.InternalError(3, 200, data.AsSpan(0, 2));

        Assert.Multiple(() =>
        {
            Assert.That(full, Does.EndWith(", data " + string.Join(' ', data.Select(d => $"0x{d:x}"))));
            Assert.That(full.Split(' ').Count(w => w.StartsWith("0x", StringComparison.Ordinal)), Is.EqualTo(KvmRunInternal.MaxData));
            Assert.That(shortBuffer, Is.EqualTo("KVM_EXIT_INTERNAL_ERROR: suberror 3 (unexpected exit while delivering an event), data 0x1 0x2"));
        });
    }

    [TestCase(KvmStopKind.FailEntry, "the VM could not continue (FailEntry)")]
    [TestCase(KvmStopKind.InternalError, "the VM could not continue (InternalError)")]
    [TestCase(KvmStopKind.UnhandledExit, "the VM could not continue (UnhandledExit)")]
    [TestCase(KvmStopKind.Shutdown, "the guest triple-faulted (KVM_EXIT_SHUTDOWN)")]
    public void AStopThatBreaksTheVmExitsThreeWithTheRegisters(KvmStopKind kind, string outcome)
    {
        var status = KvmRun.Status(kind, deviceExitStatus: 0);
        var guestExitCode = KvmRun.GuestExitCode(kind, request: null);
        var exitCode = RunCommand.ExitCode(guestExitCode, status);

        Assert.Multiple(() =>
        {
            Assert.That(status, Is.EqualTo(3));
            Assert.That(guestExitCode, Is.Null);
            Assert.That(exitCode, Is.EqualTo(3));
            Assert.That(KvmRun.ShowsRegisters(status, guestExitCode), Is.True);
            Assert.That(KvmRun.Title("x.elf", kind, guestExitCode, exitCode), Is.EqualTo($"hv run x.elf --accel kvm: {outcome}, exit status 3"));
        });
    }

    [TestCase(KvmStopKind.Halted, 0, 0)]
    [TestCase(KvmStopKind.Timeout, null, 4)]
    [TestCase(KvmStopKind.Cancelled, null, 4)]
    public void OtherStopsKeepTheirStatusAndShowNoRegisters(KvmStopKind kind, int? guestCode, int expectedExitCode)
    {
        var status = KvmRun.Status(kind, deviceExitStatus: 0);
        var guestExitCode = KvmRun.GuestExitCode(kind, request: null);

        Assert.Multiple(() =>
        {
            Assert.That(guestExitCode, Is.EqualTo(guestCode));
            Assert.That(RunCommand.ExitCode(guestExitCode, status), Is.EqualTo(expectedExitCode));
            Assert.That(KvmRun.ShowsRegisters(status, guestExitCode), Is.False);
        });
    }

    [Test]
    public void ADeviceStopIsTheGuestsOwnCode()
    {
        var request = VmStop.Shutdown(7, "isa-debug-exit");

        var status = KvmRun.Status(KvmStopKind.DeviceStop, request.ExitStatus);
        var guestExitCode = KvmRun.GuestExitCode(KvmStopKind.DeviceStop, request);

        Assert.Multiple(() =>
        {
            Assert.That(status, Is.EqualTo(15), "QEMU's (7<<1)|1");
            Assert.That(guestExitCode, Is.EqualTo(7));
            Assert.That(RunCommand.ExitCode(guestExitCode, status), Is.EqualTo(7));
            Assert.That(KvmRun.Title("x.elf", KvmStopKind.DeviceStop, guestExitCode, 7), Is.EqualTo("hv run x.elf --accel kvm: the guest exited with code 7, exit status 7"));
        });
    }
}
