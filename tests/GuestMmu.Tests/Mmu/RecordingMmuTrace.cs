using Hypervisor.GuestMmu.Addresses;
using Hypervisor.GuestMmu.Diagnostics;
using Hypervisor.GuestMmu.Mmu;
using Hypervisor.Notifier;

namespace Hypervisor.GuestMmu.Tests.Mmu;

/// <summary>Keeps every trace event as one line of text, in order (thread-safe).</summary>
internal sealed class RecordingMmuTrace : IMmuTrace
{
    private readonly List<string> _events = [];

    public IReadOnlyList<string> Events
    {
        get
        {
            lock (_events)
            {
                return [.. _events];
            }
        }
    }

    public void PageFault(Gpa gpa, EptAccess access, EptFaultResult result) =>
        Add($"kvm_page_fault {gpa} {access} {result.Outcome} retries {result.Retries}");

    public void UnmapHvaRange(Hva start, Hva end, NotifierEvent notifierEvent, long zapped) =>
        Add($"kvm_unmap_hva_range {start}-{end} {notifierEvent} zapped {zapped}");

    public void AgeHva(Hva start, Hva end, bool young) => Add($"kvm_age_hva {start}-{end} young {young}");

    public void TestAgeHva(Hva hva, bool young) => Add($"kvm_test_age_hva {hva} young {young}");

    public void SetSpteHva(Hva hva, bool hit) => Add($"kvm_set_spte_hva {hva} hit {hit}");

    public void Release(long zapped) => Add($"kvm_mmu_notifier_release zapped {zapped}");

    private void Add(string line)
    {
        lock (_events)
        {
            _events.Add(line);
        }
    }
}
