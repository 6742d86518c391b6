namespace Hypervisor.Notifier;

/// <summary>
/// Makes and frees the one subscription per (mm, allocator) that <see cref="MmuNotifierChain.Get"/> and
/// <see cref="MmuNotifierChain.Put"/> share (Linux's <c>alloc_notifier</c>/<c>free_notifier</c> ops).
/// The allocator instance is the identity: two Gets with the same allocator on the same mm share one subscription.
/// </summary>
public interface IMmuNotifierAllocator
{
    /// <summary>Creates the subscriber for <paramref name="mm"/>; called at most once per live subscription.</summary>
    IMmuNotifier Allocate(IMm mm);

    /// <summary>
    /// Frees a subscriber after its last put, once a grace period has passed: no callback of it is running
    /// or can start. Runs on a background thread and must not block.
    /// </summary>
    void Free(IMmuNotifier notifier);
}
