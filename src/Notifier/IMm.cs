namespace Hypervisor.Notifier;

/// <summary>
/// The part of a host process (Linux's <c>mm_struct</c>) that the notifier layer needs. The host memory
/// manager implements it; this layer references nothing above itself.
/// </summary>
public interface IMm
{
    /// <summary>A number that identifies the mm in traces and messages.</summary>
    int Id { get; }

    /// <summary>The mm's notifier chain: every secondary MMU that mirrors this mm subscribes here.</summary>
    MmuNotifierChain Notifiers { get; }
}
