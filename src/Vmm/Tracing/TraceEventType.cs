namespace Hypervisor.Vmm.Tracing;

/// <summary>
/// What one kind of trace event is called and what its arguments mean: shared by every event of the kind, so that
/// recording one stores a reference instead of its strings (no allocation per event).
/// </summary>
public sealed class TraceEventType
{
    /// <summary>Creates a kind of event.</summary>
    /// <param name="name">The event's name: the kernel tracepoint it models (<c>kvm_page_fault</c>, …).</param>
    /// <param name="category">The <c>cat</c> field: <c>kvm</c>, <c>mm</c>, <c>ksm</c>, <c>counter</c>, ….</param>
    /// <param name="phase">Span, instant or counter.</param>
    /// <param name="argNames">Names of up to three integer arguments (<see cref="TraceEvent.Arg0"/> …), in order.</param>
    /// <param name="hexMask">Bit i set: argument i is an address, written as a hexadecimal string.</param>
    /// <param name="textNames">Names of up to two text arguments (<see cref="TraceEvent.Text0"/>, <see cref="TraceEvent.Text1"/>).</param>
    public TraceEventType(string name, string category, TracePhase phase, string[]? argNames = null, int hexMask = 0, string[]? textNames = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        ArgumentException.ThrowIfNullOrEmpty(category);
        argNames ??= [];
        textNames ??= [];
        ArgumentOutOfRangeException.ThrowIfGreaterThan(argNames.Length, 3, nameof(argNames));
        ArgumentOutOfRangeException.ThrowIfGreaterThan(textNames.Length, 2, nameof(textNames));
        Name = name;
        Category = category;
        Phase = phase;
        ArgNames = argNames;
        HexMask = hexMask;
        TextNames = textNames;
    }

    /// <summary>The event's name.</summary>
    public string Name { get; }

    /// <summary>The event's category.</summary>
    public string Category { get; }

    /// <summary>Span, instant or counter.</summary>
    public TracePhase Phase { get; }

    /// <summary>Names of the integer arguments in use (0 to 3).</summary>
    public IReadOnlyList<string> ArgNames { get; }

    /// <summary>Bit i set: integer argument i is written in hexadecimal.</summary>
    public int HexMask { get; }

    /// <summary>Names of the text arguments in use (0 to 2).</summary>
    public IReadOnlyList<string> TextNames { get; }
}
