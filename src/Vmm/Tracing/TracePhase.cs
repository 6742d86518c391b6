namespace Hypervisor.Vmm.Tracing;

/// <summary>The trace-event phase of a recorded event (the <c>ph</c> field of the Chrome trace-event format).</summary>
public enum TracePhase
{
    /// <summary><c>"X"</c>: a complete span with a start and a duration.</summary>
    Complete,

    /// <summary><c>"i"</c>: an instant, scoped to its thread.</summary>
    Instant,

    /// <summary><c>"C"</c>: a counter sample; every argument is one series of the process's counter track.</summary>
    Counter,
}
