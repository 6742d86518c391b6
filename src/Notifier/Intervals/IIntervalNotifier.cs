namespace Hypervisor.Notifier.Intervals;

/// <summary>
/// The one callback of an interval subscriber (Linux's <c>mmu_interval_notifier_ops</c>): called from the
/// chain's start for every subscription whose interval overlaps the range. There is no end callback: the
/// subscriber learns that the invalidation finished through the sequence protocol
/// (<see cref="IntervalSubscription.ReadBegin"/> / <see cref="IntervalSubscription.ReadRetry"/>).
/// </summary>
public interface IIntervalNotifier
{
    /// <summary>
    /// Under the subscriber's own lock: call <see cref="IntervalSubscription.SetSequence"/> with
    /// <paramref name="currentSequence"/> unconditionally, then destroy the secondary entries in the range.
    /// Return false only when <see cref="NotifierRange.IsBlockable"/> is false and the work would sleep.
    /// </summary>
    bool Invalidate(IntervalSubscription subscription, in NotifierRange range, ulong currentSequence);
}
