using Hypervisor.GuestMmu.Mmu;
using Hypervisor.GuestMmu.Walker;
using Hypervisor.HostMm.Vmas;
using Hypervisor.Vmm.Boot;
using Hypervisor.Vmm.Devices;
using Hypervisor.Vmm.Machine;
using Hypervisor.Vmm.Tests.Support;

namespace Hypervisor.Vmm.Tests.Machine;

/// <summary>
/// The memory-fault exit (KVM's <c>KVM_EXIT_MEMORY_FAULT</c>): a guest write to guest RAM whose host mapping the VMM made
/// read-only exits to the VMM with the gpa and the access; a handler that restores write permission lets the vCPU run
/// the write again, and the guest never notices; without a handler the VM stops as an internal error naming the access.
/// </summary>
[Category(TestCategories.Guest)]
public sealed class MemoryFaultExitTests
{
    private const ulong Mib = 1UL << 20;

    [Test]
    public void AWriteToAReadOnlyHostMappingExitsAndRunsAgainOnceTheVmmRestoresIt()
    {
        var console = new GuestConsole();
        using var vm = Boot(console);
        var (start, length) = ReadOnlyWindow(vm);
        var faults = new List<MemoryFault>();
        vm.Emulated!.Cpus[0].MemoryFaultHandler = (fault, _) =>
        {
            faults.Add(fault);
            vm.Process!.Mprotect(vm.GuestMemory!.Base + (fault.Gpa.Value & ~0xFFFUL), 4096, Protection.Read | Protection.Write);
            return true;
        };

        var result = vm.Run();

        Assert.Multiple(() =>
        {
            Assert.That(result.Kind, Is.EqualTo(VmStopKind.GuestExit), result.Detail);
            Assert.That(console.Transcript(), Does.Contain("memtest: OK"), "every write landed once the page was writable again");
            Assert.That(faults, Has.Count.EqualTo((int)(length / 4096)), "one exit per page of the read-only window, each resolved once");
            Assert.That(faults.Select(f => f.Access), Is.All.EqualTo(EptAccess.Write));
            Assert.That(faults.Select(f => f.Gpa.Value), Is.All.InRange(start, start + length - 1));
            Assert.That(vm.Emulated.Cpus[0].MemoryFaultsResolved, Is.EqualTo(faults.Count));
            Assert.That(MmuAuditor.Check(vm.Mmu!), Is.Empty);
        });
    }

    [Test]
    public void WithoutAHandlerTheVmStopsNamingTheRefusedAccess()
    {
        using var vm = Boot(new GuestConsole());
        var (start, _) = ReadOnlyWindow(vm);

        var result = vm.Run();

        Assert.Multiple(() =>
        {
            Assert.That(result.Kind, Is.EqualTo(VmStopKind.InternalError));
            Assert.That(result.Detail, Does.Contain("memory fault").And.Contain($"write at gpa 0x{start:x}").And.Contain("refused by the host mapping"));
        });
    }

    private static Vm Boot(GuestConsole console)
    {
        var image = ElfImage.Parse(File.ReadAllBytes(GuestImages.ImagePath("memtest")));
        var vm = new Vm(new VmOptions { MemoryBytes = 16UL << 20, CommandLine = "mib=2", Timeout = TimeSpan.FromSeconds(120) }, console);
        vm.Boot(image);
        return vm;
    }

    /// <summary>Makes 8 pages at the start of memtest's region (the first MiB boundary after the image) read-only in the host.</summary>
    private static (ulong Start, ulong Length) ReadOnlyWindow(Vm vm)
    {
        var start = (vm.Image!.EndGpa + Mib - 1) & ~(Mib - 1);
        const ulong length = 8 * 4096;
        vm.Process!.Mprotect(vm.GuestMemory!.Base + start, length, Protection.Read);
        return (start, length);
    }
}
