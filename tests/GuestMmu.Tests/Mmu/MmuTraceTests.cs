using Hypervisor.GuestMmu.Addresses;
using Hypervisor.GuestMmu.Mmu;
using Hypervisor.HostMm;
using static Hypervisor.GuestMmu.Tests.Mmu.TestVm;

namespace Hypervisor.GuestMmu.Tests.Mmu;

/// <summary>The MMU reports each fault and notifier callback to its trace, named after KVM's tracepoints, with what it did.</summary>
public sealed class MmuTraceTests
{
    [Test]
    public void FaultsInvalidationsAgingAndReleaseAreTracedInOrderWithTheirOutcome()
    {
        using var vm = new TestVm();
        var trace = new RecordingMmuTrace();
        vm.Mmu.Trace = trace;

        vm.Mmu.HandleEptViolation(GpaOf(3), EptAccess.Write);
        vm.Mmu.HandleEptViolation(GpaOf(3), EptAccess.Read);
        vm.Mmu.HandleEptViolation(new Gpa(1UL << 40), EptAccess.Read);
        var young = vm.Mmu.TestYoung(vm.Mm, vm.HvaOf(3));
        var aged = vm.Mmu.ClearFlushYoung(vm.Mm, vm.HvaOf(0), vm.HvaOf(8));
        vm.Mm.Madvise(vm.HvaOf(3), 2 * Page, Advice.DontNeed);
        vm.Mm.Exit();

        Assert.That(young && aged, Is.True);
        Assert.That(trace.Events, Is.EqualTo(new[]
        {
            $"kvm_page_fault {GpaOf(3)} Write Installed retries 0",
            $"kvm_page_fault {GpaOf(3)} Read AlreadyMapped retries 0",
            $"kvm_page_fault {new Gpa(1UL << 40)} Read Mmio retries 0",
            $"kvm_test_age_hva {vm.HvaOf(3)} young True",
            $"kvm_age_hva {vm.HvaOf(0)}-{vm.HvaOf(8)} young True",
            $"kvm_unmap_hva_range {vm.HvaOf(3)}-{vm.HvaOf(5)} Clear zapped 1",
            "kvm_mmu_notifier_release zapped 0",
        }));
    }

    [Test]
    public void WithoutATraceNothingIsRecordedAndSettingOneLaterStartsThere()
    {
        using var vm = new TestVm();
        vm.Mmu.HandleEptViolation(GpaOf(1), EptAccess.Read);
        var trace = new RecordingMmuTrace();
        vm.Mmu.Trace = trace;
        vm.Mmu.HandleEptViolation(GpaOf(2), EptAccess.Read);
        vm.Mmu.Trace = null;
        vm.Mmu.HandleEptViolation(GpaOf(4), EptAccess.Read);

        Assert.That(trace.Events, Is.EqualTo(new[] { $"kvm_page_fault {GpaOf(2)} Read Installed retries 0" }));
    }
}
