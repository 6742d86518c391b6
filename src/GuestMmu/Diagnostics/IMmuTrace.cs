using Hypervisor.GuestMmu.Mmu;

namespace Hypervisor.GuestMmu.Diagnostics;

/// <summary>
/// Receives the secondary MMU's events, one method per KVM tracepoint (named in each summary) so that people
/// who know ftrace recognise them. Called synchronously on the thread that did the work, after the MMU lock
/// is dropped (but <see cref="FlushRemoteTlbs"/>, which runs under it); an implementation must be thread-safe, must not
/// block, and must not call back into the MMU. The timed overloads carry the <see cref="System.Diagnostics.Stopwatch"/>
/// timestamp at which the work began, for a timeline; by default they forward to the untimed ones.
/// </summary>
public interface IMmuTrace
{
    /// <summary><c>kvm_page_fault</c>: an EPT violation at <paramref name="gpa"/> was handled with <paramref name="result"/>.</summary>
    void PageFault(Gpa gpa, EptAccess access, EptFaultResult result);

    /// <summary>
    /// <c>kvm_unmap_hva_range</c>: notifier start over <c>[start, end)</c> of the host process for
    /// <paramref name="notifierEvent"/> zapped <paramref name="zapped"/> sptes (a TLB shootdown followed when any was).
    /// </summary>
    void UnmapHvaRange(Hva start, Hva end, NotifierEvent notifierEvent, long zapped);

    /// <summary><see cref="PageFault(Gpa, EptAccess, EptFaultResult)"/> of a fault whose handling began at <paramref name="startTimestamp"/> (<see cref="System.Diagnostics.Stopwatch.GetTimestamp"/>).</summary>
    void PageFault(Gpa gpa, EptAccess access, EptFaultResult result, long startTimestamp) => PageFault(gpa, access, result);

    /// <summary><see cref="UnmapHvaRange(Hva, Hva, NotifierEvent, long)"/> of a notifier start whose zap began at <paramref name="startTimestamp"/> (<see cref="System.Diagnostics.Stopwatch.GetTimestamp"/>).</summary>
    void UnmapHvaRange(Hva start, Hva end, NotifierEvent notifierEvent, long zapped, long startTimestamp) => UnmapHvaRange(start, end, notifierEvent, zapped);

    /// <summary>
    /// <c>kvm_flush_remote_tlbs</c> (a function, no tracepoint): a TLB shootdown to every vCPU that began at
    /// <paramref name="startTimestamp"/> has returned (no vCPU can use an older translation). Called under the MMU lock.
    /// </summary>
    void FlushRemoteTlbs(long startTimestamp)
    {
    }

    /// <summary><c>kvm_age_hva</c>: clear_flush_young or clear_young over <c>[start, end)</c>; <paramref name="young"/> when any spte was.</summary>
    void AgeHva(Hva start, Hva end, bool young);

    /// <summary><c>kvm_test_age_hva</c>: test_young of the page at <paramref name="hva"/>.</summary>
    void TestAgeHva(Hva hva, bool young);

    /// <summary><c>kvm_set_spte_hva</c>: the historical change_pte for <paramref name="hva"/>; <paramref name="hit"/> when an spte still mapped it.</summary>
    void SetSpteHva(Hva hva, bool hit);

    /// <summary><c>kvm_mmu_notifier_release</c> (a function, no tracepoint): the process exited, <paramref name="zapped"/> sptes went.</summary>
    void Release(long zapped);
}
