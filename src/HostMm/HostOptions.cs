using Hypervisor.HostMm.Frames;

namespace Hypervisor.HostMm;

/// <summary>How a simulated host is built.</summary>
public sealed record HostOptions
{
    /// <summary>Host RAM and NUMA layout.</summary>
    public required HostMemoryOptions Memory { get; init; }

    /// <summary>
    /// Issue the historical <c>change_pte</c> notifier (Linux 2.6.32–6.9) when a COW break or KSM merge
    /// installs a new PTE, inside the start/end pair as Linux did from 2012 on. Off by default, as in Linux 6.10+.
    /// </summary>
    public bool LegacyChangePte { get; init; }
}
