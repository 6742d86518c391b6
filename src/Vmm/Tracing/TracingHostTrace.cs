using Hypervisor.HostMm;
using Hypervisor.Notifier;

namespace Hypervisor.Vmm.Tracing;

/// <summary>Records the host's TLB flushes as <c>tlb_flush</c> instants under the host's trace process; PTE changes and frame frees are too many for a timeline and are not kept.</summary>
/// <param name="recorder">The run's recorder.</param>
public sealed class TracingHostTrace(TraceRecorder recorder) : IHostTrace
{
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
}
