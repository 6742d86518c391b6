using Hypervisor.Notifier.UserEvents;

namespace Hypervisor.Vmm.Demo;

/// <summary>One read of the demo's user event channel: when it happened and what it returned.</summary>
/// <param name="When">The point in the script, e.g. "after aging".</param>
/// <param name="Events">The events, in the order the channel returned them.</param>
internal sealed record UserEventRead(string When, IReadOnlyList<UserEvent> Events);
