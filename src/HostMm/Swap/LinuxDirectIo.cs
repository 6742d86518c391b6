using Microsoft.Win32.SafeHandles;

namespace Hypervisor.HostMm.Swap;

/// <summary>
/// Turns on <c>O_DIRECT</c> for an open file with glibc's <c>fcntl</c> (<c>F_GETFL</c>, then <c>F_SETFL</c>): transfers
/// then move between the caller's memory and the disk without the OS page cache, as Linux's own swap I/O does (a swap
/// file's pages go to its blocks as bios, never through the file's page cache). The file system may refuse
/// (<c>EINVAL</c>: tmpfs before Linux 6.6, some FUSE and network file systems).
/// </summary>
public static partial class LinuxDirectIo
{
    private const string Libc = "libc";
    private const int FGetfl = 3;
    private const int FSetfl = 4;

    /// <summary>
    /// <c>O_DIRECT</c>'s value on this process's architecture (x86-64 040000, arm64 0200000), or 0 where it is not
    /// known (the call is then refused as unsupported).
    /// </summary>
    public static int DirectFlag { get; } = RuntimeInformation.ProcessArchitecture switch
    {
        Architecture.X64 => 0x4000,
        Architecture.Arm64 => 0x10000,
        _ => 0,
    };

    // Whether this process can ask for direct I/O at all (Linux on x86-64 or arm64).
    private static bool IsAvailable => OperatingSystem.IsLinux() && DirectFlag != 0;

    /// <summary>
    /// Sets <c>O_DIRECT</c> on <paramref name="handle"/>; false with <paramref name="reason"/> naming the errno when the
    /// OS or the file system refuses it.
    /// </summary>
    public static bool TryEnable(SafeFileHandle handle, out string reason)
    {
        if (!IsAvailable)
        {
            reason = $"direct I/O (O_DIRECT) is only available on Linux on x86-64 or arm64, not on {RuntimeInformation.OSDescription} {RuntimeInformation.ProcessArchitecture}";
            return false;
        }

        try
        {
            var flags = Fcntl(handle, FGetfl, 0);
            if (flags < 0 || Fcntl(handle, FSetfl, flags | DirectFlag) < 0)
            {
                var errno = Marshal.GetLastPInvokeError();
                reason = $"the file system refuses O_DIRECT ({Marshal.GetPInvokeErrorMessage(errno)}, errno {errno})";
                return false;
            }
        }
        catch (Exception ex) when (ex is DllNotFoundException or EntryPointNotFoundException)
        {
            reason = $"fcntl cannot be called here: {ex.Message}";
            return false;
        }

        reason = string.Empty;
        return true;
    }

    /// <summary>
    /// Whether a file in <paramref name="folder"/> can be opened with O_DIRECT: creates a small temporary file there, asks,
    /// and deletes it. False with <paramref name="reason"/> when the OS, the file system or the folder refuses.
    /// </summary>
    public static bool TryProbe(string folder, out string reason)
    {
        var path = Path.Combine(folder, $".hv-direct-probe-{Environment.ProcessId}-{Guid.NewGuid():N}");
        try
        {
            using var handle = File.OpenHandle(path, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.None, FileOptions.DeleteOnClose);
            return TryEnable(handle, out reason);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
        {
            reason = $"no file can be created in '{folder}' to ask: {ex.Message}";
            return false;
        }
    }

    [LibraryImport(Libc, EntryPoint = "fcntl", SetLastError = true)]
    private static partial int Fcntl(SafeFileHandle fd, int command, int argument);
}
