namespace Hypervisor.Vmm.Tracing;

/// <summary>
/// One recorded event, as the ring stores it: its kind, where and when, and up to three integer and two text arguments
/// (texts are static strings, e.g. enum names from <see cref="EnumText{T}"/>, so recording allocates nothing).
/// </summary>
public struct TraceEvent
{
    /// <summary>The kind: name, category, phase and argument names.</summary>
    public TraceEventType Type;

    /// <summary>Start (spans) or time of the event, in <see cref="System.Diagnostics.Stopwatch"/> ticks.</summary>
    public long Timestamp;

    /// <summary>Length of a span in <see cref="System.Diagnostics.Stopwatch"/> ticks; 0 for other phases.</summary>
    public long Duration;

    /// <summary>The trace's process: the host, or one VM.</summary>
    public int Pid;

    /// <summary>The recording thread's managed id.</summary>
    public int Tid;

    /// <summary>First integer argument.</summary>
    public long Arg0;

    /// <summary>Second integer argument.</summary>
    public long Arg1;

    /// <summary>Third integer argument.</summary>
    public long Arg2;

    /// <summary>First text argument, or null.</summary>
    public string? Text0;

    /// <summary>Second text argument, or null.</summary>
    public string? Text1;
}
