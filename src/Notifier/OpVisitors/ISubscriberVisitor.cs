namespace Hypervisor.Notifier.OpVisitors;

/// <summary>
/// One op loop's step over one subscriber, for <c>MmuNotifierChain.ForEachSubscriber</c>. Implemented only
/// by structs (ref structs where the step needs the caller's <see cref="NotifierRange"/> by reference), so
/// the JIT compiles one specialised loop per op with <see cref="Op"/> a constant and
/// <see cref="Visit"/> inlined: no delegate, no closure, no allocation.
/// </summary>
internal interface ISubscriberVisitor
{
    /// <summary>
    /// The op the loop calls: subscribers that do not implement it are skipped. <see cref="MmuNotifierOps.None"/>
    /// visits every subscriber (release claims each one whether or not it implements the op).
    /// </summary>
    static abstract MmuNotifierOps Op { get; }

    /// <summary>Calls the op on <paramref name="subscription"/>, at <paramref name="index"/> in the list walked; false stops the walk.</summary>
    bool Visit(MmuNotifierSubscription subscription, int index);
}
