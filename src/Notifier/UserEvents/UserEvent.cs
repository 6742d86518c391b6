namespace Hypervisor.Notifier.UserEvents;

/// <summary>
/// One record returned by <see cref="UserEventChannel.Read"/> (ummunotify's <c>struct ummunotify_event</c>).
/// For <see cref="UserEventType.Invalidate"/>, <c>[HintStart, HintEnd)</c> is the span to treat as invalid:
/// the hint when <see cref="UserEventFlags.Hint"/> is set, else the whole region. For
/// <see cref="UserEventType.Last"/> both are <see cref="Hva.Zero"/>.
/// </summary>
public readonly record struct UserEvent
{
    /// <summary>Creates an event.</summary>
    /// <param name="type">What the event reports.</param>
    /// <param name="flags">Qualifiers.</param>
    /// <param name="hintStart">Inclusive start of the invalid span.</param>
    /// <param name="hintEnd">Exclusive end of the invalid span.</param>
    /// <param name="cookieOrCounter">The region's cookie (invalidate) or the generation counter (last).</param>
    public UserEvent(UserEventType type, UserEventFlags flags, Hva hintStart, Hva hintEnd, ulong cookieOrCounter)
    {
        Type = type;
        Flags = flags;
        HintStart = hintStart;
        HintEnd = hintEnd;
        CookieOrCounter = cookieOrCounter;
    }

    /// <summary>What the event reports.</summary>
    public UserEventType Type { get; }

    /// <summary>Qualifiers; <see cref="UserEventFlags.Hint"/> only on invalidates hit once.</summary>
    public UserEventFlags Flags { get; }

    /// <summary>Inclusive start of the span to treat as invalid (invalidate only).</summary>
    public Hva HintStart { get; }

    /// <summary>Exclusive end of the span to treat as invalid (invalidate only).</summary>
    public Hva HintEnd { get; }

    /// <summary>The region's cookie for <see cref="UserEventType.Invalidate"/>, the generation counter for <see cref="UserEventType.Last"/>.</summary>
    public ulong CookieOrCounter { get; }

    /// <inheritdoc />
    public override string ToString() => Type == UserEventType.Last
        ? $"Last counter={CookieOrCounter}"
        : $"Invalidate cookie={CookieOrCounter} [{HintStart}, {HintEnd}){((Flags & UserEventFlags.Hint) != 0 ? " hint" : string.Empty)}";
}
