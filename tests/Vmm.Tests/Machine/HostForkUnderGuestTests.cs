using Hypervisor.GuestMmu.Mmu;
using Hypervisor.Vmm.Boot;
using Hypervisor.Vmm.Devices;
using Hypervisor.Vmm.Machine;
using Hypervisor.Vmm.Tests.Support;

namespace Hypervisor.Vmm.Tests.Machine;

/// <summary>
/// The host forks the VMM process again and again while the guest runs (<see cref="HostForkScenario"/>): every
/// fork write-protects guest RAM copy-on-write under a notifier start/end, the MMU zaps its sptes and shoots
/// down the vCPU's TLB, and the guest's next writes refault through get-user-pages, which breaks copy-on-write.
/// The guest must print exactly what it prints undisturbed, and the EPT must stay coherent with the host.
/// </summary>
[Category(TestCategories.Guest)]
public sealed class HostForkUnderGuestTests
{
    [Test]
    public void MemtestPrintsTheSameChecksumWhileTheHostForksSnapshotsUnderIt()
    {
        var (quiet, quietOutput, _) = Run(forkEvery: null);
        var (forked, forkedOutput, audit) = Run(forkEvery: TimeSpan.FromMilliseconds(1));
        TestContext.Out.WriteLine($"{forked.HostForks} forks; {forked.Mmu.Invalidations} invalidations, {forked.Mmu.Zapped} sptes zapped, {forked.Mmu.Faults} EPT violations, {forked.Mmu.Retries} retries");

        Assert.Multiple(() =>
        {
            Assert.That(quiet.Kind, Is.EqualTo(VmStopKind.GuestExit), quiet.Detail);
            Assert.That(forked.Kind, Is.EqualTo(VmStopKind.GuestExit), forked.Detail);
            Assert.That(quietOutput, Does.Contain("memtest: OK"));
            Assert.That(forkedOutput, Is.EqualTo(quietOutput), "the snapshots are invisible to the guest");
            Assert.That(forked.HostForks, Is.Positive);
            Assert.That(forked.Mmu.Zapped, Is.GreaterThan(quiet.Mmu.Zapped), "forks zap the guest's writable sptes");
            Assert.That(forked.Mmu.Faults, Is.GreaterThan(quiet.Mmu.Faults), "and the guest refaults them");
            Assert.That(audit, Is.Empty);
        });
    }

    private static (VmRunResult Result, string Output, IReadOnlyList<string> Audit) Run(TimeSpan? forkEvery)
    {
        var image = ElfImage.Parse(File.ReadAllBytes(GuestImages.ImagePath("memtest")));
        var console = new GuestConsole();
        using var vm = new Vm(
            new VmOptions { MemoryBytes = 64UL << 20, CommandLine = "mib=8 seed=11", Timeout = TimeSpan.FromSeconds(120), HostForkInterval = forkEvery },
            console);
        vm.Boot(image);
        var result = vm.Run();
        return (result, console.Transcript(), [.. MmuAuditor.Check(vm.Mmu!).Select(v => v.ToString())]);
    }
}
