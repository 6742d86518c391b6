using Hypervisor.Notifier;
using Hypervisor.Notifier.Tracing;

namespace Hypervisor.Vmm.Demo;

/// <summary>
/// A secondary MMU whose start always has to sleep (it waits for its device), so it refuses every
/// non-blockable start, as a driver answering the OOM reaper with -EAGAIN does. As the contract requires
/// of a subscriber that can fail, it implements no end. It notes refusals and its release in the timeline.
/// </summary>
internal sealed class SleepingNotifier : IMmuNotifier
{
    private readonly NotifierEventRecorder _timeline;

    /// <summary>Creates the subscriber; it writes its notes into <paramref name="timeline"/>.</summary>
    public SleepingNotifier(NotifierEventRecorder timeline)
    {
        ArgumentNullException.ThrowIfNull(timeline);
        _timeline = timeline;
    }

    /// <summary>Number of starts refused.</summary>
    public int Refusals { get; private set; }

    /// <inheritdoc />
    public bool InvalidateRangeStart(in NotifierRange range)
    {
        if (range.IsBlockable)
        {
            return true;
        }

        Refusals++;
        _timeline.RecordHost(
            NotifierTraceKind.Mark, range.Mm.Id, range.Start, range.End, label: "sleeper refuses: its start would have to sleep");
        return false;
    }

    /// <inheritdoc />
    public void Release(IMm mm) =>
        _timeline.RecordHost(NotifierTraceKind.Mark, mm.Id, Hva.Zero, Hva.AddressSpaceEnd, label: "sleeper released: drops its mappings");
}
