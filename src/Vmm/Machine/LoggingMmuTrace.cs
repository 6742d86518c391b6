using Hypervisor.GuestMmu.Addresses;
using Hypervisor.GuestMmu.Diagnostics;
using Hypervisor.GuestMmu.Mmu;
using Hypervisor.Notifier;
using Microsoft.Extensions.Logging;

namespace Hypervisor.Vmm.Machine;

/// <summary>
/// Writes the secondary MMU's events to a logger at <see cref="LogLevel.Trace"/>, each under the event id and
/// name of the KVM tracepoint it models (<c>kvm_page_fault</c>, <c>kvm_unmap_hva_range</c>, …), in category
/// <see cref="LogCategory"/>: <c>hv run --log-level Trace</c> shows them on standard error.
/// </summary>
internal sealed partial class LoggingMmuTrace(ILogger logger) : IMmuTrace
{
    /// <summary>The logging category: the guest MMU mechanism.</summary>
    public const string LogCategory = "Hypervisor.GuestMmu";

    /// <inheritdoc />
    public void PageFault(Gpa gpa, EptAccess access, EptFaultResult result) =>
        LogPageFault(gpa.Value, access, result.Outcome, result.Spte.Pfn.Value, result.Spte.IsWritable, result.Retries);

    /// <inheritdoc />
    public void UnmapHvaRange(Hva start, Hva end, NotifierEvent notifierEvent, long zapped) =>
        LogUnmapHvaRange(start.Value, end.Value, notifierEvent, zapped);

    /// <inheritdoc />
    public void AgeHva(Hva start, Hva end, bool young) => LogAgeHva(start.Value, end.Value, young);

    /// <inheritdoc />
    public void TestAgeHva(Hva hva, bool young) => LogTestAgeHva(hva.Value, young);

    /// <inheritdoc />
    public void SetSpteHva(Hva hva, bool hit) => LogSetSpteHva(hva.Value, hit);

    /// <inheritdoc />
    public void Release(long zapped) => LogRelease(zapped);

    [LoggerMessage(EventId = 1, EventName = "kvm_page_fault", Level = LogLevel.Trace,
        Message = "kvm_page_fault: gpa 0x{Gpa:x} {Access}: {Outcome}, pfn 0x{Pfn:x} writable {Writable}, {Retries} retries")]
    private partial void LogPageFault(ulong gpa, EptAccess access, EptFaultOutcome outcome, ulong pfn, bool writable, int retries);

    [LoggerMessage(EventId = 2, EventName = "kvm_unmap_hva_range", Level = LogLevel.Trace,
        Message = "kvm_unmap_hva_range: hva 0x{Start:x}-0x{End:x} ({Event}): {Zapped} sptes zapped")]
    private partial void LogUnmapHvaRange(ulong start, ulong end, NotifierEvent @event, long zapped);

    [LoggerMessage(EventId = 3, EventName = "kvm_age_hva", Level = LogLevel.Trace,
        Message = "kvm_age_hva: hva 0x{Start:x}-0x{End:x}: young {Young}")]
    private partial void LogAgeHva(ulong start, ulong end, bool young);

    [LoggerMessage(EventId = 4, EventName = "kvm_test_age_hva", Level = LogLevel.Trace,
        Message = "kvm_test_age_hva: hva 0x{Hva:x}: young {Young}")]
    private partial void LogTestAgeHva(ulong hva, bool young);

    [LoggerMessage(EventId = 5, EventName = "kvm_set_spte_hva", Level = LogLevel.Trace,
        Message = "kvm_set_spte_hva: hva 0x{Hva:x}: spte found {Hit}")]
    private partial void LogSetSpteHva(ulong hva, bool hit);

    [LoggerMessage(EventId = 6, EventName = "kvm_mmu_notifier_release", Level = LogLevel.Trace,
        Message = "kvm_mmu_notifier_release: {Zapped} sptes zapped")]
    private partial void LogRelease(long zapped);
}
