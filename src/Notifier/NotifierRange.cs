namespace Hypervisor.Notifier;

/// <summary>
/// One invalidation: <c>[Start, End)</c> of <see cref="Mm"/> is about to change for <see cref="Event"/>
/// (Linux's <c>struct mmu_notifier_range</c>). The same value is passed to the chain's start and end;
/// the chain records in it which subscribers saw the start, so end reaches exactly those.
/// </summary>
public struct NotifierRange
{
    private readonly IMm _mm;
    private readonly Hva _start;
    private readonly Hva _end;
    private readonly NotifierEvent _event;
    private readonly bool _blockable;
    private readonly object? _owner;

    /// <summary>Creates a range; throws <see cref="InvalidRangeException"/> for an empty or unaligned range.</summary>
    /// <param name="mm">The mm whose page tables change.</param>
    /// <param name="start">Inclusive, page-aligned start.</param>
    /// <param name="end">Exclusive, page-aligned end above <paramref name="start"/>.</param>
    /// <param name="notifierEvent">Why the range changes.</param>
    /// <param name="blockable">False when subscribers must not sleep (the OOM reaper's case).</param>
    /// <param name="owner">The initiator, for <see cref="NotifierEvent.Migrate"/> and <see cref="NotifierEvent.Exclusive"/>.</param>
    public NotifierRange(IMm mm, Hva start, Hva end, NotifierEvent notifierEvent, bool blockable = true, object? owner = null)
    {
        ArgumentNullException.ThrowIfNull(mm);
        InvalidRangeException.ThrowIfInvalidPageRange(start, end);
        if (!Enum.IsDefined(notifierEvent))
        {
            throw new ArgumentOutOfRangeException(nameof(notifierEvent), notifierEvent, "not a NotifierEvent value");
        }

        _mm = mm;
        _start = start;
        _end = end;
        _event = notifierEvent;
        _blockable = blockable;
        _owner = owner;
        Subscribers = null;
        IntervalsActive = false;
        ReadToken = default;
    }

    /// <summary>The mm whose page tables change.</summary>
    public readonly IMm Mm => _mm;

    /// <summary>Inclusive start.</summary>
    public readonly Hva Start => _start;

    /// <summary>Exclusive end.</summary>
    public readonly Hva End => _end;

    /// <summary>Why the range changes.</summary>
    public readonly NotifierEvent Event => _event;

    /// <summary>True when subscribers may sleep in start/end; false for the OOM reaper's non-blocking walk.</summary>
    public readonly bool IsBlockable => _blockable;

    /// <summary>The initiator for migrate/exclusive events, so it can ignore its own invalidations.</summary>
    public readonly object? Owner => _owner;

    /// <summary>Length of the range in bytes.</summary>
    public readonly ulong Length => _end - _start;

    /// <summary>True when the range and <c>[start, end)</c> share at least one byte.</summary>
    public readonly bool Overlaps(Hva start, Hva end) => start < _end && _start < end;

    /// <summary>The subscriber list that saw the start; set by the chain, null before start.</summary>
    internal MmuNotifierSubscription[]? Subscribers { readonly get; set; }

    /// <summary>True when the start counted an active range on the interval side.</summary>
    internal bool IntervalsActive { readonly get; set; }

    /// <summary>The chain's read-side section held from the start until the end returns.</summary>
    internal Srcu.SrcuReadToken ReadToken { readonly get; set; }

    /// <inheritdoc />
    public override readonly string ToString() =>
        $"mm {_mm.Id} [{_start}, {_end}) {_event}{(_blockable ? string.Empty : " nonblock")}";
}
