using Hypervisor.Vmm.Boot;
using Hypervisor.Vmm.Devices;
using Hypervisor.Vmm.Machine;
using Hypervisor.Vmm.Tests.Support;

namespace Hypervisor.Vmm.Tests.Machine;

/// <summary>The emulated vCPU's between-slices hook: called on the vCPU's thread after every slice; a failing hook ends the run as an internal error.</summary>
public sealed class VcpuSliceHookTests
{
    [Test]
    [Category(TestCategories.Guest)]
    public void TheHookRunsAfterEverySliceOnTheVcpusThread()
    {
        using var vm = new Vm(new VmOptions { MemoryBytes = 16UL << 20, CommandLine = "mib=2" }, new GuestConsole());
        vm.Boot(ElfImage.Parse(File.ReadAllBytes(GuestImages.ImagePath("memtest"))));
        var vcpu = vm.Emulated!.Cpus[0];
        vcpu.SliceInstructions = 10_000;
        var calls = 0L;
        var runThread = -1;
        vcpu.BetweenSlices = () =>
        {
            calls++;
            runThread = Environment.CurrentManagedThreadId;
        };

        var result = vm.Run();

        Assert.Multiple(() =>
        {
            Assert.That(result.GuestExitCode, Is.Zero);
            // Slices end early at exits (port I/O), never late: at least one call per full slice of instructions.
            Assert.That(calls, Is.GreaterThanOrEqualTo(result.Cpu.Instructions / 10_000 - 1));
            Assert.That(runThread, Is.EqualTo(Environment.CurrentManagedThreadId));
        });
    }

    [Test]
    [Category(TestCategories.Guest)]
    public void AFailingHookStopsTheVmAsAnInternalErrorNamingIt()
    {
        using var vm = new Vm(new VmOptions { MemoryBytes = 16UL << 20, CommandLine = "mib=2" }, new GuestConsole());
        vm.Boot(ElfImage.Parse(File.ReadAllBytes(GuestImages.ImagePath("memtest"))));
        var vcpu = vm.Emulated!.Cpus[0];
        vcpu.SliceInstructions = 1_000;
        vcpu.BetweenSlices = () => throw new InvalidOperationException("audit found 1 violation");

        var result = vm.Run();

        Assert.Multiple(() =>
        {
            Assert.That(result.Kind, Is.EqualTo(VmStopKind.InternalError));
            Assert.That(result.Detail, Does.Contain("audit found 1 violation"));
        });
    }

    [Test]
    public void ASliceOfNoInstructionsIsRefused()
    {
        using var vm = new Vm(new VmOptions { MemoryBytes = 16UL << 20 }, new GuestConsole());

        Assert.Throws<ArgumentOutOfRangeException>(() => vm.Emulated!.Cpus[0].SliceInstructions = 0);
    }
}
