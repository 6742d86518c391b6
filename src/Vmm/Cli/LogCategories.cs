namespace Hypervisor.Vmm.Cli;

/// <summary>
/// Logging categories: one per mechanism, named after the namespace that implements it, so that
/// <c>--log-level</c> and logging filters address mechanisms rather than classes.
/// </summary>
internal static class LogCategories
{
    /// <summary>The notifier chain: starts, ends, aging, release.</summary>
    public const string Notifier = "Hypervisor.Notifier";

    /// <summary>The host memory manager (primary MMU).</summary>
    public const string HostMm = "Hypervisor.HostMm";

    /// <summary>The guest (secondary) MMU.</summary>
    public const string GuestMmu = "Hypervisor.GuestMmu";

    /// <summary>The scripted demonstrations.</summary>
    public const string Demo = "Hypervisor.Vmm.Demo";
}
