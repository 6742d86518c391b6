using Hypervisor.Notifier.Tracing;

namespace Hypervisor.Vmm.Demo;

/// <summary>One printed row of the demo's timeline: one recorded event, or a run of host steps folded into one.</summary>
/// <param name="Kind">The kind of the event (of every event, for a folded run).</param>
/// <param name="Mm">The mm id(s) the row is about, or empty (marks, frame frees).</param>
/// <param name="Range">The range, formatted; empty when there is none.</param>
/// <param name="Event">The notifier event (with " nonblock" when not blockable), or empty.</param>
/// <param name="Detail">What happened, in words.</param>
/// <param name="ThreadId">Managed id of the thread that produced the event(s).</param>
/// <param name="Events">How many recorded events the row stands for (1 unless folded).</param>
internal sealed record TimelineRow(
    NotifierTraceKind Kind,
    string Mm,
    string Range,
    string Event,
    string Detail,
    int ThreadId,
    int Events);
