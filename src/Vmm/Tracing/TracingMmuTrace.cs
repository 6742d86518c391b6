using System.Diagnostics;
using Hypervisor.GuestMmu.Addresses;
using Hypervisor.GuestMmu.Diagnostics;
using Hypervisor.GuestMmu.Mmu;
using Hypervisor.Notifier;

namespace Hypervisor.Vmm.Tracing;

/// <summary>
/// Records one VM's secondary-MMU events into a <see cref="TraceRecorder"/> under the VM's trace process: EPT
/// violations, notifier zaps and TLB shootdowns as spans (timed from the hook's start timestamp), aging, change_pte and
/// release as instants, on the thread that did the work.
/// </summary>
/// <param name="recorder">The run's recorder.</param>
/// <param name="pid">The VM's trace process (<see cref="TraceRecorder.VmPid"/>).</param>
public sealed class TracingMmuTrace(TraceRecorder recorder, int pid) : IMmuTrace
{
    /// <inheritdoc />
    public void PageFault(Gpa gpa, EptAccess access, EptFaultResult result) =>
        PageFault(gpa, access, result, Stopwatch.GetTimestamp());

    /// <inheritdoc />
    public void PageFault(Gpa gpa, EptAccess access, EptFaultResult result, long startTimestamp) =>
        recorder.Complete(
            TraceEventTypes.KvmPageFault,
            pid,
            startTimestamp,
            (long)gpa.Value,
            result.Retries,
            (long)result.Spte.Pfn.Value,
            EnumText<EptAccess>.Of(access),
            EnumText<EptFaultOutcome>.Of(result.Outcome));

    /// <inheritdoc />
    public void UnmapHvaRange(Hva start, Hva end, NotifierEvent notifierEvent, long zapped) =>
        UnmapHvaRange(start, end, notifierEvent, zapped, Stopwatch.GetTimestamp());

    /// <inheritdoc />
    public void UnmapHvaRange(Hva start, Hva end, NotifierEvent notifierEvent, long zapped, long startTimestamp) =>
        recorder.Complete(TraceEventTypes.KvmUnmapHvaRange, pid, startTimestamp, (long)start.Value, (long)end.Value, zapped, EnumText<NotifierEvent>.Of(notifierEvent));

    /// <inheritdoc />
    public void FlushRemoteTlbs(long startTimestamp) => recorder.Complete(TraceEventTypes.KvmFlushRemoteTlbs, pid, startTimestamp);

    /// <inheritdoc />
    public void AgeHva(Hva start, Hva end, bool young) =>
        recorder.Instant(TraceEventTypes.KvmAgeHva, pid, (long)start.Value, (long)end.Value, young ? 1 : 0);

    /// <inheritdoc />
    public void TestAgeHva(Hva hva, bool young) => recorder.Instant(TraceEventTypes.KvmTestAgeHva, pid, (long)hva.Value, young ? 1 : 0);

    /// <inheritdoc />
    public void SetSpteHva(Hva hva, bool hit) => recorder.Instant(TraceEventTypes.KvmSetSpteHva, pid, (long)hva.Value, hit ? 1 : 0);

    /// <inheritdoc />
    public void Release(long zapped) => recorder.Instant(TraceEventTypes.KvmMmuNotifierRelease, pid, zapped);
}
