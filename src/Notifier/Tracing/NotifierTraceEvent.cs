using System.Globalization;
using System.Text;

namespace Hypervisor.Notifier.Tracing;

/// <summary>One recorded event, stamped with a global order and the thread that produced it.</summary>
public readonly record struct NotifierTraceEvent
{
    /// <summary>Global order: strictly increasing across every recorder in the process.</summary>
    public long Sequence { get; init; }

    /// <summary>What happened.</summary>
    public NotifierTraceKind Kind { get; init; }

    /// <summary>The mm it happened to.</summary>
    public int MmId { get; init; }

    /// <summary>Inclusive start of the range (the address, for single-address events).</summary>
    public Hva Start { get; init; }

    /// <summary>Exclusive end of the range.</summary>
    public Hva End { get; init; }

    /// <summary>The range's event, for start/end/interval events.</summary>
    public NotifierEvent? Event { get; init; }

    /// <summary>The range's blockable flag, for start/end/interval events.</summary>
    public bool Blockable { get; init; }

    /// <summary>The frame involved, for frame frees and PTE changes.</summary>
    public Pfn Pfn { get; init; }

    /// <summary>The PTE value, for change_pte and host PTE changes.</summary>
    public HostPte Pte { get; init; }

    /// <summary>Managed id of the thread that produced the event.</summary>
    public int ThreadId { get; init; }

    /// <summary>Free text for marks and host steps.</summary>
    public string? Label { get; init; }

    /// <summary>One line: sequence, kind, range, event and extras.</summary>
    public override string ToString()
    {
        var text = new StringBuilder();
        text.Append(CultureInfo.InvariantCulture, $"#{Sequence} {Kind} mm {MmId} [{Start}, {End})");
        if (Event is { } notifierEvent)
        {
            text.Append(CultureInfo.InvariantCulture, $" {notifierEvent}{(Blockable ? string.Empty : " nonblock")}");
        }

        if (Kind is NotifierTraceKind.FrameFree or NotifierTraceKind.HostPteChange)
        {
            text.Append(CultureInfo.InvariantCulture, $" {Pfn}");
        }

        if (Kind is NotifierTraceKind.ChangePte or NotifierTraceKind.HostPteChange)
        {
            text.Append(CultureInfo.InvariantCulture, $" pte {Pte}");
        }

        if (Label is not null)
        {
            text.Append(" \"").Append(Label).Append('"');
        }

        return text.ToString();
    }
}
