using Hypervisor.Notifier.Srcu;

namespace Hypervisor.Notifier.Tests.Support;

/// <summary>
/// Bounded observations that a waiter has reached its wait, so a test proves the wait happened instead of
/// sleeping and finding that nothing happened meanwhile.
/// </summary>
public static class Reached
{
    /// <summary>How long a test waits for an event it expects before failing.</summary>
    public static readonly TimeSpan Bound = TimeSpan.FromSeconds(10);

    /// <summary>
    /// True once a grace period of <paramref name="domain"/> has begun since its epoch was
    /// <paramref name="epochBefore"/>: the writer flipped the epoch and now waits for the old one to drain.
    /// False if that did not happen within <see cref="Bound"/>. Use with one writer at a time.
    /// </summary>
    public static bool GracePeriodBegan(SrcuDomain domain, int epochBefore) =>
        SpinWait.SpinUntil(() => domain.Epoch != epochBefore, Bound);

    /// <summary>True once <paramref name="count"/> threads sleep until the chain's interval sequence moves; false after <see cref="Bound"/>.</summary>
    public static bool SequenceWaiters(MmuNotifierChain chain, int count) =>
        SpinWait.SpinUntil(() => chain.SequenceWaiters == count, Bound);
}
