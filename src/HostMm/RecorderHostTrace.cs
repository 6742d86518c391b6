using Hypervisor.Notifier.Tracing;

namespace Hypervisor.HostMm;

/// <summary>Writes host steps into a <see cref="NotifierEventRecorder"/>'s timeline, beside the notifier callbacks it records.</summary>
public sealed class RecorderHostTrace : IHostTrace
{
    private readonly NotifierEventRecorder _recorder;

    /// <summary>Creates a trace that writes into <paramref name="recorder"/>.</summary>
    public RecorderHostTrace(NotifierEventRecorder recorder)
    {
        ArgumentNullException.ThrowIfNull(recorder);
        _recorder = recorder;
    }

    /// <inheritdoc />
    public void PteChanged(Mm mm, Hva address, HostPte before, HostPte after) =>
        _recorder.RecordHost(NotifierTraceKind.HostPteChange, mm.Id, address, address + Paging.PageSize,
            after.IsPresent ? after.Pfn : before.Pfn, after);

    /// <inheritdoc />
    public void TlbFlushed(Mm mm, Hva start, Hva end) =>
        _recorder.RecordHost(NotifierTraceKind.HostTlbFlush, mm.Id, start, end);

    /// <inheritdoc />
    public void FrameFreed(Pfn pfn) =>
        _recorder.RecordHost(NotifierTraceKind.FrameFree, 0, Hva.Zero, Hva.Zero + Paging.PageSize, pfn);
}
