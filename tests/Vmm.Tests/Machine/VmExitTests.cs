using Hypervisor.GuestMmu.Mmu;
using Hypervisor.Vmm.Boot;
using Hypervisor.Vmm.Devices;
using Hypervisor.Vmm.Machine;
using Hypervisor.Vmm.Tests.Support;

namespace Hypervisor.Vmm.Tests.Machine;

/// <summary>
/// How a <see cref="Vm"/> run ends, on tiny images: the guest's own exit code beside QEMU's status, HLT and
/// power-off, a triple fault's report, the instruction limit and the timeout.
/// </summary>
public sealed class VmExitTests
{
    private const ulong Memory = 16UL << 20;

    private readonly List<Vm> _vms = [];

    [TestCase((byte)0, 1)]
    [TestCase((byte)1, 3)]
    [TestCase((byte)42, 85)]
    [TestCase((byte)255, 511)]
    public void DebugExitGivesTheValueAsTheGuestCodeAndQemusStatus(byte value, int qemuStatus)
    {
        var (result, _) = Run(TestImages.DebugExit(value));

        Assert.Multiple(() =>
        {
            Assert.That(result.Kind, Is.EqualTo(VmStopKind.GuestExit), result.Detail);
            Assert.That(result.GuestExitCode, Is.EqualTo(value));
            Assert.That(result.ExitStatus, Is.EqualTo(qemuStatus));
        });
    }

    [Test]
    public void PowerOffGivesCodeAndStatusZero()
    {
        var (result, vm) = Run(TestImages.PowerOff());

        Assert.Multiple(() =>
        {
            Assert.That(result.Kind, Is.EqualTo(VmStopKind.GuestExit), result.Detail);
            Assert.That(vm.Stop.Request?.Reason, Is.EqualTo(VmStopReason.PowerOff));
            Assert.That(result.GuestExitCode, Is.Zero);
            Assert.That(result.ExitStatus, Is.Zero);
        });
    }

    [Test]
    public void HaltGivesCodeAndStatusZero()
    {
        var (result, _) = Run(TestImages.Halt());

        Assert.Multiple(() =>
        {
            Assert.That(result.Kind, Is.EqualTo(VmStopKind.Halted), result.Detail);
            Assert.That(result.GuestExitCode, Is.Zero);
            Assert.That(result.ExitStatus, Is.Zero);
        });
    }

    [Test]
    public void TripleFaultStopsTheVmWithTheReasonAndTheRegisters()
    {
        var (result, vm) = Run(TestImages.TripleFault());

        Assert.Multiple(() =>
        {
            Assert.That(result.Kind, Is.EqualTo(VmStopKind.TripleFault), result.Detail);
            Assert.That(result.GuestExitCode, Is.Null);
            Assert.That(result.ExitStatus, Is.EqualTo(3));
            Assert.That(result.Detail, Does.StartWith("triple fault: InvalidOpcode"));
            Assert.That(result.Detail, Does.Contain($"RIP 0x{TestImages.CodeAddress + 10:x}"), "the #UD is reported at the UD2 after the 10-byte MOV");
            Assert.That(result.Detail, Does.Contain($"RAX={TestImages.RaxMarker:x16}"));
            Assert.That(result.Detail, Does.Contain("RIP=").And.Contain("RSP=").And.Contain("CR3="));
            Assert.That(MmuAuditor.Check(vm.Mmu), Is.Empty);
        });
    }

    [Test]
    public void InstructionLimitStopsARunawayGuest()
    {
        var (result, _) = Run(TestImages.Spin(), new VmOptions { MemoryBytes = Memory, InstructionLimit = 10_000 });

        Assert.Multiple(() =>
        {
            Assert.That(result.Kind, Is.EqualTo(VmStopKind.InstructionLimit), result.Detail);
            Assert.That(result.GuestExitCode, Is.Null);
            Assert.That(result.ExitStatus, Is.EqualTo(4));
            Assert.That(result.Cpu.Instructions, Is.GreaterThanOrEqualTo(10_000));
            Assert.That(result.Detail, Does.Contain("instruction limit of 10000"));
        });
    }

    [Test]
    public void TimeoutStopsARunawayGuest()
    {
        var (result, _) = Run(TestImages.Spin(), new VmOptions { MemoryBytes = Memory, Timeout = TimeSpan.FromMilliseconds(200) });

        Assert.Multiple(() =>
        {
            Assert.That(result.Kind, Is.EqualTo(VmStopKind.Timeout), result.Detail);
            Assert.That(result.GuestExitCode, Is.Null);
            Assert.That(result.ExitStatus, Is.EqualTo(4));
            Assert.That(result.Elapsed, Is.GreaterThanOrEqualTo(TimeSpan.FromMilliseconds(200)));
            Assert.That(result.Detail, Does.Contain("timeout"));
        });
    }

    [Test]
    public void CancellationStopsARunawayGuest()
    {
        using var cancel = new CancellationTokenSource(TimeSpan.FromMilliseconds(100));
        var console = new GuestConsole();
        using var vm = new Vm(new VmOptions { MemoryBytes = Memory }, console);
        vm.Boot(ElfImage.Parse(TestImages.Spin()));

        var result = vm.Run(cancel.Token);

        Assert.Multiple(() =>
        {
            Assert.That(result.Kind, Is.EqualTo(VmStopKind.Timeout), result.Detail);
            Assert.That(result.Detail, Does.StartWith("cancelled"));
            Assert.That(result.GuestExitCode, Is.Null);
        });
    }

    [Test]
    public void ProgressHasNoGuestCodeWhileRunning()
    {
        var console = new GuestConsole();
        using var vm = new Vm(new VmOptions { MemoryBytes = Memory }, console);
        vm.Boot(ElfImage.Parse(TestImages.Halt()));

        Assert.That(vm.Progress().GuestExitCode, Is.Null);
    }

    [TearDown]
    public void DisposeVms()
    {
        foreach (var vm in _vms)
        {
            vm.Dispose();
        }

        _vms.Clear();
    }

    // The VM stays alive with its result: tests read its stop signal and MMU after the run (disposed in TearDown).
    private (VmRunResult Result, Vm Vm) Run(byte[] image, VmOptions? options = null)
    {
        var vm = new Vm(options ?? new VmOptions { MemoryBytes = Memory, Timeout = TimeSpan.FromSeconds(30) }, new GuestConsole());
        _vms.Add(vm);
        vm.Boot(ElfImage.Parse(image));
        return (vm.Run(), vm);
    }
}
