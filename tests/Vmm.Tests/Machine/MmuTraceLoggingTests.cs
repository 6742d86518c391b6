using Hypervisor.Vmm.Boot;
using Hypervisor.Vmm.Devices;
using Hypervisor.Vmm.Machine;
using Hypervisor.Vmm.Tests.Support;
using Microsoft.Extensions.Logging;

namespace Hypervisor.Vmm.Tests.Machine;

/// <summary>
/// With the guest MMU's category at Trace (<c>hv run --log-level Trace</c>), a VM logs every secondary-MMU event
/// under the name of the KVM tracepoint it models; above Trace it attaches no trace at all.
/// </summary>
[Category(TestCategories.Guest)]
public sealed class MmuTraceLoggingTests
{
    [Test]
    public void AtTraceEveryEptViolationAndTheReleaseAreLoggedAsKvmTracepoints()
    {
        var (result, entries) = Run(LogLevel.Trace);
        var mmu = entries.Where(e => e.Category == "Hypervisor.GuestMmu").ToList();

        Assert.Multiple(() =>
        {
            Assert.That(mmu.Count(e => e.Event.Name == "kvm_page_fault"), Is.EqualTo(result.Mmu.Faults).And.Positive);
            Assert.That(mmu.Select(e => e.Level), Is.All.EqualTo(LogLevel.Trace));
            Assert.That(mmu.First().Message, Does.StartWith("kvm_page_fault: gpa 0x"), "the guest's first access is an EPT violation");
            Assert.That(mmu.Last().Event.Name, Is.EqualTo("kvm_mmu_notifier_release"), "the process exits when the VM goes");
            Assert.That(mmu.Select(e => e.Event.Name).Distinct(), Is.SubsetOf(new[] { "kvm_page_fault", "kvm_unmap_hva_range", "kvm_age_hva", "kvm_test_age_hva", "kvm_set_spte_hva", "kvm_mmu_notifier_release" }));
        });
    }

    [Test]
    public void AboveTraceTheMmuLogsNothing()
    {
        var (result, entries) = Run(LogLevel.Debug);

        Assert.That(result.Mmu.Faults, Is.Positive);
        Assert.That(entries.Where(e => e.Category == "Hypervisor.GuestMmu"), Is.Empty);
    }

    private static (VmRunResult Result, IReadOnlyList<(string Category, LogLevel Level, EventId Event, string Message)> Entries) Run(LogLevel minimum)
    {
        var provider = new RecordingLoggerProvider();
        using (var factory = LoggerFactory.Create(builder => builder.SetMinimumLevel(minimum).AddProvider(provider)))
        {
            var image = ElfImage.Parse(File.ReadAllBytes(GuestImages.ImagePath("hello")));
            VmRunResult result;
            using (var vm = new Vm(new VmOptions { LoggerFactory = factory, Timeout = TimeSpan.FromSeconds(60) }, new GuestConsole()))
            {
                vm.Boot(image);
                result = vm.Run();
            }

            return (result, provider.Entries);
        }
    }
}
