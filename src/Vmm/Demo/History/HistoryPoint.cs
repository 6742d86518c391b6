namespace Hypervisor.Vmm.Demo.History;

/// <summary>
/// A named point in an actor's code where the <see cref="StepScheduler"/> can hold it. A point holds its actor only
/// while armed, and only once per arming; unarmed, it costs a dictionary lookup and nothing else.
/// </summary>
internal enum HistoryPoint
{
    /// <summary>The vCPU's fault is about to resolve its guest page's host frame (get-user-pages).</summary>
    VcpuResolving,

    /// <summary>The vCPU's fault has resolved the host frame and holds its short-term reference; it has not taken the MMU lock yet.</summary>
    VcpuResolved,

    /// <summary>The host has just cleared (or replaced with a non-present entry) the PTE of the page the race is about.</summary>
    HostPteCleared,

    /// <summary>The host has just freed the frame the race is about.</summary>
    HostFrameFreed,

    /// <summary>A release has reached the secondary MMU's callback and has not zapped anything yet.</summary>
    ReleaseReachedMmu,
}
