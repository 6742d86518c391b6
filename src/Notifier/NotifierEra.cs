namespace Hypervisor.Notifier;

/// <summary>
/// Which historical contract a chain (and the host that drives it) follows. <see cref="Current"/> is the only one a
/// product uses; the others re-create, for demonstrations and their tests, the designs whose races shaped the API
/// (<c>reference/mmu-notifier.md</c> §1.1 and §4). Never the default.
/// </summary>
public enum NotifierEra
{
    /// <summary>
    /// Today's contract: exit calls every release while the subscriber is still listed, then unlists all, then
    /// synchronizes; unregister claims the single release while listed and inside a read-side section, then
    /// synchronizes; the host brackets every change with range start and end.
    /// </summary>
    Current = 0,

    /// <summary>
    /// Linux 2.6.27–3.5, before "mm: mmu_notifier: fix freed page still mapped in secondary MMU" (2012): exit and
    /// unregister unlist a subscriber first and only then call its release. Between the two, an invalidation issued
    /// from outside the exiting task (rmap: reclaim, migration) no longer reaches the subscriber, so the host frees
    /// pages the secondary MMU still maps.
    /// </summary>
    ReleaseAfterUnlink,

    /// <summary>
    /// Linux 3.9-rc (2013), "mmu_notifier_unregister NULL Pointer deref and multiple -&gt;release() callouts": the unlink
    /// claims the release, so it is never called twice, but unregister calls it after the unlink and outside any
    /// read-side section. An exit racing with it finds nothing to release and nothing to wait for, and frees every page
    /// while the secondary MMU still maps them; "re-fix freed page still mapped in secondary MMU" undid it.
    /// </summary>
    UnlinkClaimsRelease,

    /// <summary>
    /// The 2008 designs before range start/end (Nick Piggin's hooks, Andrea Arcangeli's first cut): the host tells
    /// secondary MMUs about a change only once it is done, with one invalidate after it cleared the PTEs, flushed its
    /// TLB and freed the pages (<see cref="MmuNotifierChain.InvalidateRange"/>). Nothing is "in progress" for a
    /// secondary fault to see while the PTEs change, so one that resolved the old frame before the change installs it
    /// after, and the frame is freed under the new spte until the late invalidate.
    /// </summary>
    NoRangeStartEnd,
}
