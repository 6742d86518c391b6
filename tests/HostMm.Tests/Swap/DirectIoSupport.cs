using Hypervisor.HostMm.Swap;

namespace Hypervisor.HostMm.Tests.Swap;

/// <summary>Whether this machine's temp folder can hold a direct-I/O swap file; tests that need one ignore themselves when not.</summary>
internal static class DirectIoSupport
{
    private static readonly Lazy<string?> Refusal = new(Probe);

    /// <summary>Ignores the calling test, naming the reason, when a direct-I/O swap file cannot be made in the temp folder.</summary>
    public static void IgnoreUnlessAvailable()
    {
        if (Refusal.Value is { } reason)
        {
            Assert.Ignore($"direct I/O is not available for a swap file in {Path.GetTempPath()}: {reason}");
        }
    }

    /// <summary>True when the open file <paramref name="path"/> (opened by this process) carries O_DIRECT, from /proc/self/fdinfo.</summary>
    public static bool IsOpenWithDirectIo(string path)
    {
        foreach (var link in Directory.EnumerateFileSystemEntries("/proc/self/fd"))
        {
            string? target;
            try
            {
                target = new FileInfo(link).LinkTarget;
            }
            catch (IOException)
            {
                continue; // closed meanwhile
            }

            if (target is null || !target.StartsWith(path, StringComparison.Ordinal))
            {
                continue; // a deleted file's target ends in " (deleted)"
            }

            var flags = File.ReadLines("/proc/self/fdinfo/" + Path.GetFileName(link))
                .First(line => line.StartsWith("flags:", StringComparison.Ordinal))["flags:".Length..].Trim();
            return (Convert.ToInt32(flags, 8) & LinuxDirectIo.DirectFlag) != 0;
        }

        throw new InvalidOperationException($"no open file descriptor of this process points at '{path}'");
    }

    private static string? Probe() => LinuxDirectIo.TryProbe(Path.GetTempPath(), out var reason) ? null : reason;
}
