namespace Hypervisor.Notifier.UserEvents;

/// <summary>Qualifiers of a <see cref="UserEvent"/>.</summary>
[Flags]
public enum UserEventFlags
{
    /// <summary>No qualifier: for an invalidate, the whole region must be treated as invalid.</summary>
    None = 0,

    /// <summary>
    /// The region was hit exactly once since it was last read, and only <c>[HintStart, HintEnd)</c> (the
    /// part of the invalidated range inside the region) changed.
    /// </summary>
    Hint = 1 << 0,
}
