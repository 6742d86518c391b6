namespace Hypervisor.Notifier.UserEvents;

/// <summary>What a <see cref="UserEvent"/> reports (ummunotify's <c>UMMUNOTIFY_EVENT_TYPE_*</c>).</summary>
public enum UserEventType
{
    /// <summary>A registered region was (partly) invalidated; <see cref="UserEvent.CookieOrCounter"/> is its cookie.</summary>
    Invalidate = 0,

    /// <summary>
    /// The pending list has drained; <see cref="UserEvent.CookieOrCounter"/> is the generation counter at
    /// that moment, the value a consumer stores as "seen".
    /// </summary>
    Last = 1,
}
