using System.Collections.Concurrent;
using Hypervisor.HostMm;
using Hypervisor.HostMm.Huge;
using Hypervisor.HostMm.Migration;
using Hypervisor.Notifier;

namespace Hypervisor.Vmm.Tracing;

/// <summary>
/// Records the host's steps into a <see cref="TraceRecorder"/>: TLB flushes as <c>tlb_flush</c> instants and swap I/O
/// requests as spans under the host's trace process; KSM merges, page migrations and huge page splits and collapses as
/// spans under the trace process of the VM whose host process they were done for (<see cref="MapProcess"/>), or the
/// host's. Every span is on the thread that did the work. PTE changes and frame frees are too many for a timeline and
/// are not kept.
/// </summary>
/// <param name="recorder">The run's recorder.</param>
public sealed class TracingHostTrace(TraceRecorder recorder) : IHostTrace
{
    private readonly ConcurrentDictionary<int, int> _pids = new();

    /// <summary>Records the spans of <paramref name="mm"/> under trace process <paramref name="pid"/> (its VM's).</summary>
    public void MapProcess(Mm mm, int pid)
    {
        ArgumentNullException.ThrowIfNull(mm);
        _pids[mm.Id] = pid;
    }

    /// <inheritdoc />
    public void PteChanged(Mm mm, Hva address, HostPte before, HostPte after)
    {
    }

    /// <inheritdoc />
    public void TlbFlushed(Mm mm, Hva start, Hva end) =>
        recorder.Instant(TraceEventTypes.TlbFlush, TraceRecorder.HostPid, (long)start.Value, (long)end.Value);

    /// <inheritdoc />
    public void FrameFreed(Pfn pfn)
    {
    }

    /// <inheritdoc />
    public void SwapIo(bool write, ulong firstSlot, int pages, int sameFilled, bool ok, long startTimestamp) =>
        recorder.Complete(
            write ? TraceEventTypes.SwapWrite : TraceEventTypes.SwapRead,
            TraceRecorder.HostPid,
            startTimestamp,
            (long)firstSlot,
            pages,
            (long)(pages - sameFilled) * (long)Paging.PageSize, // the device's bytes: same-filled pages need no I/O
            ok ? "ok" : "error");

    /// <inheritdoc />
    public void KsmMerged(Mm mm, Hva address, Pfn pfn, Pfn kpfn, long startTimestamp) =>
        recorder.Complete(TraceEventTypes.KsmMerge, PidOf(mm), startTimestamp, (long)address.Value, (long)pfn.Value, (long)kpfn.Value);

    /// <inheritdoc />
    public void PageMigrated(Mm mm, Pfn pfn, int fromNode, int toNode, int pages, MigrationFailure failure, long startTimestamp) =>
        recorder.Complete(
            TraceEventTypes.MigratePage,
            PidOf(mm),
            startTimestamp,
            (long)pfn.Value,
            fromNode,
            toNode,
            failure == MigrationFailure.None ? "migrated" : EnumText<MigrationFailure>.Of(failure),
            pages == 1 ? "4K" : "2M");

    /// <inheritdoc />
    public void HugeSplit(Mm mm, Hva hugeAddress, long startTimestamp) =>
        recorder.Complete(TraceEventTypes.HugeSplit, PidOf(mm), startTimestamp, (long)hugeAddress.Value);

    /// <inheritdoc />
    public void HugeCollapse(Mm mm, Hva hugeAddress, CollapseResult result, long startTimestamp) =>
        recorder.Complete(TraceEventTypes.HugeCollapse, PidOf(mm), startTimestamp, (long)hugeAddress.Value, text0: EnumText<CollapseResult>.Of(result));

    private int PidOf(Mm mm) => _pids.TryGetValue(mm.Id, out var pid) ? pid : TraceRecorder.HostPid;
}
