namespace Hypervisor.Notifier.Tracing;

/// <summary>What one recorded event was: a notifier callback, or a host-side step the host reports.</summary>
public enum NotifierTraceKind
{
    /// <summary><see cref="IMmuNotifier.Release"/>.</summary>
    Release,

    /// <summary><see cref="IMmuNotifier.InvalidateRangeStart"/>.</summary>
    InvalidateRangeStart,

    /// <summary><see cref="IMmuNotifier.InvalidateRangeEnd"/>.</summary>
    InvalidateRangeEnd,

    /// <summary><see cref="IMmuNotifier.ClearFlushYoung"/>.</summary>
    ClearFlushYoung,

    /// <summary><see cref="IMmuNotifier.ClearYoung"/>.</summary>
    ClearYoung,

    /// <summary><see cref="IMmuNotifier.TestYoung"/>.</summary>
    TestYoung,

    /// <summary><see cref="IMmuNotifier.ChangePte"/>.</summary>
    ChangePte,

    /// <summary><see cref="IMmuNotifier.InvalidateSecondaryTlbs"/>.</summary>
    InvalidateSecondaryTlbs,

    /// <summary><see cref="Intervals.IIntervalNotifier.Invalidate"/>.</summary>
    IntervalInvalidate,

    /// <summary>Host side: a host PTE changed (cleared, replaced, protection changed).</summary>
    HostPteChange,

    /// <summary>Host side: the host flushed its CPU TLB for a range.</summary>
    HostTlbFlush,

    /// <summary>Host side: a frame's last reference was dropped and it returned to the free list.</summary>
    FrameFree,

    /// <summary>A free-form marker a test or scenario inserts.</summary>
    Mark,
}
