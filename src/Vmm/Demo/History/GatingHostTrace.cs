using Hypervisor.HostMm;
using Hypervisor.Notifier;
using Hypervisor.Notifier.Tracing;

namespace Hypervisor.Vmm.Demo.History;

/// <summary>
/// The host's trace in a replayed race: records every host step in the timeline (<see cref="RecorderHostTrace"/>) and,
/// for the one page and the one frame the race is about, lets the scheduler hold the host right after the PTE was cleared
/// (<see cref="HistoryPoint.HostPteCleared"/>, under that page-table lock, which no other actor needs meanwhile) or right
/// after the frame was freed (<see cref="HistoryPoint.HostFrameFreed"/>, no allocator lock held).
/// </summary>
internal sealed class GatingHostTrace : IHostTrace
{
    private readonly RecorderHostTrace _inner;
    private readonly StepScheduler _scheduler;

    /// <summary>Creates the trace.</summary>
    public GatingHostTrace(NotifierEventRecorder recorder, StepScheduler scheduler)
    {
        _inner = new RecorderHostTrace(recorder);
        _scheduler = scheduler;
    }

    /// <summary>The page whose PTE clear may hold the host (null: none).</summary>
    public Hva? WatchedPage { get; set; }

    /// <summary>The frame whose free may hold the host (null: none).</summary>
    public Pfn? WatchedFrame { get; set; }

    /// <inheritdoc />
    public void PteChanged(Mm mm, Hva address, HostPte before, HostPte after)
    {
        _inner.PteChanged(mm, address, before, after);
        if (address == WatchedPage && before.IsPresent && !after.IsPresent)
        {
            _scheduler.Hold(HistoryPoint.HostPteCleared);
        }
    }

    /// <inheritdoc />
    public void TlbFlushed(Mm mm, Hva start, Hva end) => _inner.TlbFlushed(mm, start, end);

    /// <inheritdoc />
    public void FrameFreed(Pfn pfn)
    {
        _inner.FrameFreed(pfn);
        if (pfn == WatchedFrame)
        {
            _scheduler.Hold(HistoryPoint.HostFrameFreed);
        }
    }
}
