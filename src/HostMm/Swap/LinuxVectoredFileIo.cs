using Microsoft.Win32.SafeHandles;

namespace Hypervisor.HostMm.Swap;

/// <summary>
/// glibc's <c>pwritev</c> and <c>preadv</c> (64-bit <c>off_t</c> on x86-64 and arm64 Linux): one system call
/// transfers a run of slots straight from or to the frames the iovecs point at.
/// </summary>
// unsafe: the imports take raw iovec arrays that point at native memory.
internal sealed unsafe partial class LinuxVectoredFileIo : IVectoredFileIo
{
    /// <summary>Interrupted by a signal before any byte moved: call again.</summary>
    public const int Eintr = 4;

    /// <summary>Linux's I/O error.</summary>
    public const int Eio = 5;

    /// <summary>Invalid argument (a vector the file system refuses): fall back to plain transfers.</summary>
    public const int Einval = 22;

    /// <summary>No space left on the device.</summary>
    public const int Enospc = 28;

    /// <summary>The call does not exist (an old kernel, or a sandbox that filters it): fall back to plain transfers.</summary>
    public const int Enosys = 38;

    /// <summary>The operation is not supported on this file: fall back to plain transfers.</summary>
    public const int Eopnotsupp = 95;

    private const string Libc = "libc";

    private LinuxVectoredFileIo()
    {
    }

    /// <summary>The one instance: the calls keep no state.</summary>
    public static LinuxVectoredFileIo Instance { get; } = new();

    /// <inheritdoc />
    public long Write(SafeFileHandle handle, Iovec* iov, int count, long offset, out int errno)
    {
        var n = Pwritev(handle, iov, count, offset);
        errno = n < 0 ? Marshal.GetLastPInvokeError() : 0;
        return n;
    }

    /// <inheritdoc />
    public long Read(SafeFileHandle handle, Iovec* iov, int count, long offset, out int errno)
    {
        var n = Preadv(handle, iov, count, offset);
        errno = n < 0 ? Marshal.GetLastPInvokeError() : 0;
        return n;
    }

    [LibraryImport(Libc, EntryPoint = "pwritev", SetLastError = true)]
    private static partial nint Pwritev(SafeFileHandle fd, Iovec* iov, int iovcnt, long offset);

    [LibraryImport(Libc, EntryPoint = "preadv", SetLastError = true)]
    private static partial nint Preadv(SafeFileHandle fd, Iovec* iov, int iovcnt, long offset);
}
