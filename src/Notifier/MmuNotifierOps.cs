namespace Hypervisor.Notifier;

/// <summary>Which optional <see cref="IMmuNotifier"/> ops a subscriber implements.</summary>
[Flags]
public enum MmuNotifierOps
{
    /// <summary>No op implemented.</summary>
    None = 0,

    /// <summary><see cref="IMmuNotifier.Release"/>.</summary>
    Release = 1 << 0,

    /// <summary><see cref="IMmuNotifier.InvalidateRangeStart"/>.</summary>
    InvalidateRangeStart = 1 << 1,

    /// <summary><see cref="IMmuNotifier.InvalidateRangeEnd"/>.</summary>
    InvalidateRangeEnd = 1 << 2,

    /// <summary><see cref="IMmuNotifier.ClearFlushYoung"/>.</summary>
    ClearFlushYoung = 1 << 3,

    /// <summary><see cref="IMmuNotifier.ClearYoung"/>.</summary>
    ClearYoung = 1 << 4,

    /// <summary><see cref="IMmuNotifier.TestYoung"/>.</summary>
    TestYoung = 1 << 5,

    /// <summary><see cref="IMmuNotifier.ChangePte"/>.</summary>
    ChangePte = 1 << 6,

    /// <summary><see cref="IMmuNotifier.InvalidateSecondaryTlbs"/>.</summary>
    InvalidateSecondaryTlbs = 1 << 7,

    /// <summary><see cref="IMmuNotifier.ClearYoungBitmap"/>.</summary>
    ClearYoungBitmap = 1 << 8,

    /// <summary><see cref="IMmuNotifier.ClearFlushYoungBitmap"/>.</summary>
    ClearFlushYoungBitmap = 1 << 9,
}
