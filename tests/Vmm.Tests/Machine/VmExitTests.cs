using Hypervisor.GuestMmu.Mmu;
using Hypervisor.Vmm.Boot;
using Hypervisor.Vmm.Devices;
using Hypervisor.Vmm.Machine;
using Hypervisor.Vmm.Tests.Support;

namespace Hypervisor.Vmm.Tests.Machine;

/// <summary>
/// How a <see cref="Vm"/> run ends on the emulated accelerator, on tiny images: the guest's own exit code beside QEMU's
/// status, HLT and power-off, a triple fault's and an internal error's report with the registers, the instruction
/// limit, the timeout, cancellation, and the progress snapshot of a VM that has not stopped.
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
    public void HaltWithNothingToWakeTheVcpuGivesStatusFiveAndNoGuestCode()
    {
        var (result, _) = Run(TestImages.Halt());

        Assert.Multiple(() =>
        {
            Assert.That(result.Kind, Is.EqualTo(VmStopKind.Halted), result.Detail);
            Assert.That(result.GuestExitCode, Is.Null);
            Assert.That(result.ExitStatus, Is.EqualTo(5));
            Assert.That(result.ExitCode, Is.EqualTo(5));
        });
    }

    [Test]
    public void ABootVcpuThatHaltsForGoodWhileItsApplicationProcessorsWaitForStartUpStopsTheVmAsHalted()
    {
        var (result, vm) = Run(TestImages.Halt(), new VmOptions { MemoryBytes = Memory, CpuCount = 3, Timeout = TimeSpan.FromSeconds(30) });

        Assert.Multiple(() =>
        {
            Assert.That(result.Kind, Is.EqualTo(VmStopKind.Halted), result.Detail);
            Assert.That(result.ExitStatus, Is.EqualTo(5));
            Assert.That(result.Detail, Does.StartWith("every vCPU is halted with nothing that can wake it"));
            Assert.That(result.Vcpus, Has.Count.EqualTo(3));
            Assert.That(result.Vcpus.Skip(1).Select(v => v.Counters.Interpreter.Instructions), Is.All.Zero, "the application processors were never started");
            Assert.That(vm.Emulated!.Halts!.Awake, Is.Zero);
        });
    }

    [Test]
    [Category(TestCategories.Guest)]
    public void ASmpGuestWhoseCpusAllHaltWithInterruptsOffOrNothingPendingStopsWithStatusFive()
    {
        var image = File.ReadAllBytes(GuestImages.ImagePath("smp"));
        var (result, vm) = Run(image, new VmOptions { MemoryBytes = 64UL << 20, CpuCount = 3, CommandLine = "hang=1 rounds=5 mib=1", Timeout = TimeSpan.FromSeconds(60) });

        Assert.Multiple(() =>
        {
            Assert.That(result.Kind, Is.EqualTo(VmStopKind.Halted), result.Detail);
            Assert.That(result.ExitStatus, Is.EqualTo(5));
            Assert.That(result.Detail, Does.StartWith("every vCPU is halted with nothing that can wake it"));
            Assert.That(result.Vcpus.Select(v => v.Counters.Interpreter.Instructions), Is.All.Positive, "every vCPU ran before all of them halted");
            Assert.That(vm.Emulated!.Halts!.Wakeups, Is.Positive, "the application processors slept in HLT and were woken by IPIs");
            Assert.That(MmuAuditor.Check(vm.Mmu!), Is.Empty);
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
            Assert.That(result.Detail, Does.Not.Contain(Environment.NewLine), "one line; the registers travel in the snapshot");
            Assert.That(result.Registers?.Rax, Is.EqualTo(TestImages.RaxMarker));
            Assert.That(result.Registers?.Rip, Is.EqualTo(TestImages.CodeAddress + 10));
            Assert.That(result.Registers?.Bitness, Is.EqualTo(64));
            Assert.That(MmuAuditor.Check(vm.Mmu!), Is.Empty);
        });
    }

    [TestCase(false, (byte)0x5A)]
    [TestCase(true, (byte)0xA5)]
    public void AGuestThatTurnsOnThirtyTwoBitOrPaePagingRunsThroughItsLargePagesToTheDebugExit(bool pae, byte marker)
    {
        var (result, vm) = Run(TestImages.EnableLegacyPaging(pae, marker));

        Assert.Multiple(() =>
        {
            Assert.That(result.Kind, Is.EqualTo(VmStopKind.GuestExit), result.Detail);
            Assert.That(result.GuestExitCode, Is.EqualTo(marker), "the byte read back through the large page is the one stored before paging");
            Assert.That(result.Registers?.Cr0 & 0x8000_0000, Is.EqualTo(0x8000_0000UL));
            Assert.That(result.Registers?.Cr4 & 0x30, Is.EqualTo(pae ? 0x20UL : 0x10UL));
            Assert.That(MmuAuditor.Check(vm.Mmu!), Is.Empty);
        });
    }

    [Test]
    public void APagingModeTheWalkerDoesNotModelStopsTheVmWithAnInternalErrorNamingIt()
    {
        var (result, vm) = Run(TestImages.EnableFiveLevelPaging());

        Assert.Multiple(() =>
        {
            Assert.That(result.Kind, Is.EqualTo(VmStopKind.InternalError), result.Detail);
            Assert.That(result.ExitStatus, Is.EqualTo(VmExitStatus.Broken));
            Assert.That(result.GuestExitCode, Is.Null);
            Assert.That(result.Detail, Does.StartWith("guest paging mode LongMode5Level "));
            Assert.That(result.Registers?.Rbx, Is.EqualTo(TestImages.RaxMarker & 0xFFFF_FFFF));
            Assert.That(result.Registers?.Cr0 & 0x8000_0000, Is.EqualTo(0x8000_0000UL));
            Assert.That(result.Registers?.Cr4 & 0x1000, Is.EqualTo(0x1000UL));
            Assert.That(MmuAuditor.Check(vm.Mmu!), Is.Empty);
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
            Assert.That(result.Kind, Is.EqualTo(VmStopKind.Cancelled), result.Detail);
            Assert.That(result.Detail, Does.StartWith("cancelled at RIP 0x"));
            Assert.That(result.GuestExitCode, Is.Null);
            Assert.That(result.ExitStatus, Is.EqualTo(VmExitStatus.Limit));
        });
    }

    [Test]
    public void ProgressIsRunningWithoutAGuestCodeOrRegistersUntilTheRunEnds()
    {
        var console = new GuestConsole();
        using var vm = new Vm(new VmOptions { MemoryBytes = Memory }, console);
        vm.Boot(ElfImage.Parse(TestImages.Halt()));
        var before = vm.Progress();

        var result = vm.Run();
        var after = vm.Progress();

        Assert.Multiple(() =>
        {
            Assert.That(before.Kind, Is.EqualTo(VmStopKind.Running));
            Assert.That(before.GuestExitCode, Is.Null);
            Assert.That(before.Registers, Is.Null);
            Assert.That(after, Is.SameAs(result), "after the run, progress is the run's result");
        });
    }

    [Test]
    public void ProgressWhileTheGuestRunsIsRunningAndCounts()
    {
        using var cancel = new CancellationTokenSource();
        var console = new GuestConsole();
        using var vm = new Vm(new VmOptions { MemoryBytes = Memory, Timeout = TimeSpan.FromSeconds(30) }, console);
        vm.Boot(ElfImage.Parse(TestImages.Spin()));
        var run = Task.Run(() => vm.Run(cancel.Token));
        VmRunResult progress;
        var clock = System.Diagnostics.Stopwatch.StartNew();
        do
        {
            Thread.Sleep(10);
            progress = vm.Progress();
        }
        while (progress.Cpu.Instructions == 0 && clock.Elapsed < TimeSpan.FromSeconds(20));

        cancel.Cancel();
        var result = run.Wait(TimeSpan.FromSeconds(20)) ? run.Result : null;

        Assert.Multiple(() =>
        {
            Assert.That(progress.Kind, Is.EqualTo(VmStopKind.Running));
            Assert.That(progress.Cpu.Instructions, Is.Positive, "the counters move while the guest runs");
            Assert.That(progress.Elapsed, Is.GreaterThan(TimeSpan.Zero));
            Assert.That(result?.Kind, Is.EqualTo(VmStopKind.Cancelled), "cancelled, not timed out: the timeout is 30 s");
        });
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
