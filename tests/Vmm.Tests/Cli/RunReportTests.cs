using Hypervisor.Vmm.Accel;
using Hypervisor.Vmm.Cli;
using Hypervisor.Vmm.Cli.Output;
using Hypervisor.Vmm.Devices;
using Hypervisor.Vmm.Machine;

namespace Hypervisor.Vmm.Tests.Cli;

/// <summary>
/// The closing report of <c>hv run</c> from synthetic results (no guest, no /dev/kvm): one title format for both
/// accelerators, and the registers after the detail exactly when the VM broke.
/// </summary>
public sealed class RunReportTests
{
    [TestCase(AcceleratorKind.Kvm, VmStopKind.InternalError, "FailEntry", "hv run x.elf --accel kvm: the VM could not continue (FailEntry), exit status 3")]
    [TestCase(AcceleratorKind.Kvm, VmStopKind.InternalError, "InternalError", "hv run x.elf --accel kvm: the VM could not continue (InternalError), exit status 3")]
    [TestCase(AcceleratorKind.Kvm, VmStopKind.InternalError, "UnhandledExit", "hv run x.elf --accel kvm: the VM could not continue (UnhandledExit), exit status 3")]
    [TestCase(AcceleratorKind.Kvm, VmStopKind.Shutdown, null, "hv run x.elf --accel kvm: the guest triple-faulted (KVM_EXIT_SHUTDOWN), exit status 3")]
    [TestCase(AcceleratorKind.Kvm, VmStopKind.Halted, null, "hv run x.elf --accel kvm: the guest halted with nothing to wake it, exit status 5")]
    [TestCase(AcceleratorKind.Kvm, VmStopKind.Timeout, null, "hv run x.elf --accel kvm: timed out, exit status 4")]
    [TestCase(AcceleratorKind.Kvm, VmStopKind.Cancelled, null, "hv run x.elf --accel kvm: cancelled, exit status 4")]
    [TestCase(AcceleratorKind.Emulated, VmStopKind.TripleFault, null, "hv run x.elf: the guest triple-faulted, exit status 3")]
    [TestCase(AcceleratorKind.Emulated, VmStopKind.InternalError, null, "hv run x.elf: the VM could not continue, exit status 3")]
    [TestCase(AcceleratorKind.Emulated, VmStopKind.InstructionLimit, null, "hv run x.elf: instruction limit reached, exit status 4")]
    [TestCase(AcceleratorKind.Emulated, VmStopKind.Timeout, null, "hv run x.elf: timed out, exit status 4")]
    public void TheTitleSaysHowTheRunEndedAndTheExitCode(AcceleratorKind accelerator, VmStopKind kind, string? cause, string title)
    {
        Assert.That(RunReport.Title("x.elf", Result(accelerator, kind, cause, request: null)), Is.EqualTo(title));
    }

    [TestCase(AcceleratorKind.Emulated, "hv run x.elf: the guest exited with code 7, exit status 7")]
    [TestCase(AcceleratorKind.Kvm, "hv run x.elf --accel kvm: the guest exited with code 7, exit status 7")]
    public void AGuestExitIsTitledWithTheGuestsOwnCode(AcceleratorKind accelerator, string title)
    {
        var result = Result(accelerator, VmStopKind.GuestExit, null, VmStop.Shutdown(7, "isa-debug-exit"));

        Assert.Multiple(() =>
        {
            Assert.That(result.ExitStatus, Is.EqualTo(15), "QEMU's (7<<1)|1");
            Assert.That(result.ExitCode, Is.EqualTo(7));
            Assert.That(RunReport.Title("x.elf", result), Is.EqualTo(title));
        });
    }

    [TestCase(VmStopKind.InternalError, true)]
    [TestCase(VmStopKind.TripleFault, true)]
    [TestCase(VmStopKind.Shutdown, true)]
    [TestCase(VmStopKind.Timeout, false)]
    [TestCase(VmStopKind.Halted, false)]
    public void TheRegistersFollowTheDetailExactlyWhenTheVmBroke(VmStopKind kind, bool shown)
    {
        using var vm = new Vm(new VmOptions { MemoryBytes = 16UL << 20 }, new GuestConsole());
        var registers = new RegisterSnapshot { Rip = 0x10_0002, Rax = 0x1122_3344_5566_7788, Bitness = 64 };
        var result = Result(AcceleratorKind.Emulated, kind, null, null) with { Vcpus = [new VcpuResult(0, default, registers)] };
        using var output = new StringWriter();

        RunReport.Write(result, vm, "x.elf", new PlainReportWriter(output));
        var lines = output.ToString().Split(Environment.NewLine);
        var detail = Array.IndexOf(lines, "the detail");

        Assert.Multiple(() =>
        {
            Assert.That(detail, Is.Positive, output.ToString());
            Assert.That(lines.Skip(detail + 1).Take(7), shown ? Is.EqualTo(RegisterFormatter.Lines(registers)) : Has.None.StartsWith("RIP="));
            Assert.That(output.ToString(), Does.Contain("instructions"), "the counters follow");
        });
    }

    private static VmRunResult Result(AcceleratorKind accelerator, VmStopKind kind, string? cause, VmStop? request) => new()
    {
        Accelerator = accelerator,
        Kind = kind,
        Detail = "the detail",
        Cause = cause,
        ExitStatus = VmExitStatus.Of(kind, request),
        GuestExitCode = VmExitStatus.GuestExitCodeOf(kind, request),
        Elapsed = TimeSpan.FromMilliseconds(1),
        Vcpus = [new VcpuResult(0, default, null)],
    };
}
