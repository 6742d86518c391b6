using Hypervisor.HostMm.Swap;

namespace Hypervisor.Vmm.Tests.Support;

/// <summary>Whether the temp folder can hold a direct-I/O (O_DIRECT) swap file; tests that need one ignore themselves when not.</summary>
internal static class DirectIo
{
    private static readonly Lazy<string?> Refusal = new(() => LinuxDirectIo.TryProbe(Path.GetTempPath(), out var reason) ? null : reason);

    /// <summary>Ignores the calling test, naming the reason, when a direct-I/O swap file cannot be made in the temp folder.</summary>
    public static void IgnoreUnlessAvailable()
    {
        if (Refusal.Value is { } reason)
        {
            Assert.Ignore($"direct I/O is not available in {Path.GetTempPath()}: {reason}");
        }
    }
}
