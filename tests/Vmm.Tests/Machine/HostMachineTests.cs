using Hypervisor.GuestMmu.Mmu;
using Hypervisor.HostMm;
using Hypervisor.Vmm.Accel;
using Hypervisor.Vmm.Boot;
using Hypervisor.Vmm.Devices;
using Hypervisor.Vmm.Machine;
using Hypervisor.Vmm.Tests.Support;

namespace Hypervisor.Vmm.Tests.Machine;

/// <summary>
/// Several VMs on one <see cref="HostMachine"/>: one host (one frame pool) whose used frames cover every VM's resident
/// pages, a host process and (under a host memory limit) a cgroup per VM, every guest verifying its own memory while
/// the others run, the seam that sees each VM's RAM, the count rules, and a VM built alone keeping a host of its own.
/// </summary>
public sealed class HostMachineTests
{
    private const ulong GuestRam = 32UL << 20;
    private static readonly TimeSpan Limit = TimeSpan.FromSeconds(60);

    [TestCase(2)]
    [TestCase(4)]
    [Category(TestCategories.Guest)]
    public void MemtestVmsOnOneHostEachVerifyTheirOwnMemoryAndShareOneFramePool(int count)
    {
        var options = new VmOptions { MemoryBytes = GuestRam, CommandLine = "mib=2", Timeout = Limit };
        using var machine = new HostMachine(options, count);
        var (vms, consoles) = Build(machine, options, count, "memtest");
        try
        {
            var results = machine.Run(vms);
            var rss = vms.Select(vm => vm.Process!.Stats.RssPages).ToList();
            var used = machine.Stats.Memory.AllocatedFrames;

            Assert.Multiple(() =>
            {
                for (var i = 0; i < count; i++)
                {
                    Assert.That(results[i].GuestExitCode, Is.Zero, $"VM {i}: {results[i].Detail}\n{consoles[i].Transcript()}");
                    Assert.That(consoles[i].Transcript(), Does.Contain("memtest: OK, 262144 words verified"), $"VM {i}");
                    Assert.That(vms[i].Host, Is.SameAs(machine.Host), $"VM {i} is on the shared host");
                    Assert.That(vms[i].Index, Is.EqualTo(i));
                    Assert.That(rss[i], Is.GreaterThanOrEqualTo(512), $"VM {i} touched its 2 MiB");
                    Assert.That(MmuAuditor.Check(vms[i].Mmu!), Is.Empty, $"VM {i}'s MMU");
                }

                Assert.That(vms.Select(vm => vm.Process).Distinct().Count(), Is.EqualTo(count), "one host process per VM");
                Assert.That(machine.Stats.Processes, Is.EqualTo(count));
                Assert.That(used, Is.GreaterThanOrEqualTo(rss.Sum()), "one frame pool holds every VM's resident pages");
                Assert.That(machine.Host.Memory.TotalBytes, Is.EqualTo(HostMachine.HostBytesFor(GuestRam, count)));
                Assert.That(HostMmAuditor.Check(machine.Host), Is.Empty);
            });
        }
        finally
        {
            Dispose(vms);
        }
    }

    [Test]
    [Category(TestCategories.Guest)]
    public void UnderAHostMemoryLimitEachVmHasItsOwnCgroupOfThatLimitAndOneReclaimerServesThemAll()
    {
        const ulong limit = 4UL << 20;
        var options = new VmOptions { MemoryBytes = GuestRam, CommandLine = "mib=8", Timeout = Limit, HostMemoryBytes = limit, Swap = VmOptions.DefaultSwap(GuestRam * 2) };
        using var machine = new HostMachine(options, 2);
        var (vms, consoles) = Build(machine, options, 2, "memtest");
        try
        {
            var results = machine.Run(vms);

            Assert.Multiple(() =>
            {
                for (var i = 0; i < 2; i++)
                {
                    Assert.That(results[i].GuestExitCode, Is.Zero, $"VM {i}: {results[i].Detail}\n{consoles[i].Transcript()}");
                    Assert.That(consoles[i].Transcript(), Does.Contain("memtest: OK"), $"VM {i}");
                    Assert.That(vms[i].Process!.Cgroup.Name, Is.EqualTo($"vm{i}"));
                    Assert.That(vms[i].Process!.Cgroup.MaxPages, Is.EqualTo((long)(limit / 4096)));
                    Assert.That(results[i].HostMemory!.Cgroup.PeakPages, Is.LessThanOrEqualTo((long)(limit / 4096)), $"VM {i} stays under its own limit");
                    Assert.That(vms[i].ReclaimDaemon, Is.SameAs(machine.ReclaimDaemon), "one kswapd for the host");
                }

                Assert.That(vms[0].Process!.Cgroup, Is.Not.SameAs(vms[1].Process!.Cgroup));
                Assert.That(machine.Host.Reclaim.Stats.Pswpout, Is.GreaterThan(0), "8 MiB written under a 4 MiB limit must swap");
                Assert.That(HostMmAuditor.Check(machine.Host), Is.Empty);
            });
        }
        finally
        {
            Dispose(vms);
        }
    }

    [Test]
    [Category(TestCategories.Guest)]
    public void AFailureOfTheSharedReclaimerStopsEveryVmAsAnInternalErrorNamingIt()
    {
        var options = new VmOptions { MemoryBytes = GuestRam, CommandLine = "mib=16", Timeout = Limit, HostMemoryBytes = 4UL << 20, Swap = VmOptions.DefaultSwap(GuestRam * 2) };
        using var machine = new HostMachine(options, 2);
        machine.ReclaimStepped = () => throw new InvalidOperationException("injected audit failure");
        var (vms, _) = Build(machine, options, 2, "memtest");
        try
        {
            var results = machine.Run(vms);

            Assert.Multiple(() =>
            {
                Assert.That(machine.ReclaimDaemon!.Failure, Is.InstanceOf<InvalidOperationException>());
                foreach (var result in results)
                {
                    Assert.That(result.Kind, Is.EqualTo(VmStopKind.InternalError), result.Detail);
                    Assert.That(result.Detail, Does.Contain("kswapd").And.Contain("injected audit failure"));
                }
            });
        }
        finally
        {
            Dispose(vms);
        }
    }

    [Test]
    public void TheGuestRamHookSeesEachVmsIndexAndRamOnceMapped()
    {
        var options = new VmOptions { MemoryBytes = GuestRam };
        using var machine = new HostMachine(options, 3);
        var seen = new List<(int Index, GuestRam Ram)>();
        machine.GuestRamMapped = (index, ram) => seen.Add((index, ram));
        var (vms, _) = Build(machine, options, 3, image: null);
        try
        {
            Assert.Multiple(() =>
            {
                Assert.That(seen.Select(s => s.Index), Is.EqualTo(new[] { 0, 1, 2 }));
                for (var i = 0; i < 3; i++)
                {
                    Assert.That(seen[i].Ram.Process, Is.SameAs(vms[i].Process));
                    Assert.That(seen[i].Ram.Size, Is.EqualTo(GuestRam));
                    Assert.That(seen[i].Ram, Is.SameAs(vms[i].GuestMemory));
                    Assert.That(vms[i].Memslots!.Count, Is.EqualTo(1));
                }
            });
        }
        finally
        {
            Dispose(vms);
        }
    }

    [Test]
    public void AVmBuiltAloneHasAOneVmHostOfItsOwnAsBefore()
    {
        const ulong limit = 8UL << 20;
        using var vm = new Vm(new VmOptions { MemoryBytes = 128UL << 20, HostMemoryBytes = limit }, new GuestConsole());

        Assert.Multiple(() =>
        {
            Assert.That(vm.Machine, Is.Not.Null);
            Assert.That(vm.Machine!.VmCount, Is.EqualTo(1));
            Assert.That(vm.Index, Is.Zero);
            Assert.That(vm.Host, Is.SameAs(vm.Machine.Host));
            Assert.That(vm.Host!.Memory.TotalBytes, Is.EqualTo(176UL << 20), "128 MiB + 1/8 + 32 MiB, as a VM's host always was");
            Assert.That(vm.Process!.Cgroup.Name, Is.EqualTo("vm"));
            Assert.That(vm.Host.Mms, Has.Count.EqualTo(1));
        });
    }

    [Test]
    public void AMachineRefusesMoreVmsThanItWasSizedFor()
    {
        var options = new VmOptions { MemoryBytes = GuestRam };
        using var machine = new HostMachine(options, 1);
        using var first = new Vm(options, new GuestConsole(), machine);

        var error = Assert.Throws<InvalidOperationException>(() => new Vm(options, new GuestConsole(), machine).Dispose());

        Assert.That(error!.Message, Does.Contain("sized for 1 VM"));
    }

    [Test]
    public void AVmWhoseGuestRamDiffersFromTheMachinesIsRefused()
    {
        using var machine = new HostMachine(new VmOptions { MemoryBytes = GuestRam }, 2);

        var error = Assert.Throws<VmOptionsException>(() => new Vm(new VmOptions { MemoryBytes = GuestRam * 2 }, new GuestConsole(), machine).Dispose());

        Assert.Multiple(() =>
        {
            Assert.That(error!.Rule, Is.EqualTo(VmOptionRule.VmCount));
            Assert.That(error.Message, Does.Contain($"got {GuestRam * 2} bytes"));
            Assert.That(machine.AttachedVms, Is.Zero, "nothing attached");
        });
    }

    [TestCase(0, "at least 1, got 0")]
    [TestCase(-3, "at least 1, got -3")]
    public void AVmCountBelowOneIsRefused(int count, string words)
    {
        var error = Assert.Throws<VmOptionsException>(() => new HostMachine(new VmOptions { MemoryBytes = GuestRam }, count).Dispose());

        Assert.Multiple(() =>
        {
            Assert.That(error!.Rule, Is.EqualTo(VmOptionRule.VmCount));
            Assert.That(error.Message, Does.Contain(words));
        });
    }

    [Test]
    public void TheMostVmsAreThoseWhoseHostFitsTheLargestSimulatedHost()
    {
        var max = HostMachine.MaxVmCount(128UL << 20);
        var options = new VmOptions { MemoryBytes = 128UL << 20 };

        Assert.Multiple(() =>
        {
            Assert.That(max, Is.EqualTo(454), "(64 GiB - 32 MiB) / 144 MiB");
            Assert.That(HostMachine.HostBytesFor(128UL << 20, max), Is.LessThanOrEqualTo(HostMm.Frames.HostMemoryOptions.MaxTotalBytes));
            Assert.That(HostMachine.HostBytesFor(128UL << 20, max + 1), Is.GreaterThan(HostMm.Frames.HostMemoryOptions.MaxTotalBytes));
            Assert.That(HostMachine.MaxVmCount(VmOptions.MaxMemoryBytes), Is.EqualTo(18));
            Assert.DoesNotThrow(() => HostMachine.ValidateVmCount(options, max));
            var error = Assert.Throws<VmOptionsException>(() => HostMachine.ValidateVmCount(options, max + 1));
            Assert.That(error!.Rule, Is.EqualTo(VmOptionRule.VmCount));
            Assert.That(error.Message, Does.Contain("455 VMs of 128 MiB do not fit one host: at most 454"));
        });
    }

    [Test]
    public void SeveralVmsNeedTheEmulatedAccelerator()
    {
        var error = Assert.Throws<VmOptionsException>(() => HostMachine.ValidateVmCount(new VmOptions { Accelerator = AcceleratorKind.Kvm }, 2));

        Assert.Multiple(() =>
        {
            Assert.That(error!.Rule, Is.EqualTo(VmOptionRule.VmCount));
            Assert.That(error.Message, Does.Contain("need the emulated accelerator"));
            Assert.DoesNotThrow(() => HostMachine.ValidateVmCount(new VmOptions { Accelerator = AcceleratorKind.Kvm }, 1));
        });
    }

    private static (List<Vm> Vms, List<GuestConsole> Consoles) Build(HostMachine machine, VmOptions options, int count, string? image)
    {
        var elf = image is null ? null : ElfImage.Parse(File.ReadAllBytes(GuestImages.ImagePath(image)));
        var vms = new List<Vm>();
        var consoles = new List<GuestConsole>();
        try
        {
            for (var i = 0; i < count; i++)
            {
                var console = new GuestConsole();
                var vm = new Vm(options, console, machine);
                vms.Add(vm);
                consoles.Add(console);
                if (elf is not null)
                {
                    vm.Boot(elf);
                }
            }
        }
        catch
        {
            Dispose(vms);
            throw;
        }

        return (vms, consoles);
    }

    private static void Dispose(List<Vm> vms)
    {
        for (var i = vms.Count - 1; i >= 0; i--)
        {
            vms[i].Dispose();
        }
    }
}
