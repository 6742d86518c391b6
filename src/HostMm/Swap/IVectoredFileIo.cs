using Microsoft.Win32.SafeHandles;

namespace Hypervisor.HostMm.Swap;

/// <summary>
/// The positional vectored system calls <see cref="FileSwapDevice"/> makes (<see cref="LinuxVectoredFileIo"/>), an
/// interface so tests can make them short or failing.
/// </summary>
// unsafe: the calls take raw iovec arrays that point at native memory.
internal unsafe interface IVectoredFileIo
{
    /// <summary><c>pwritev</c>: bytes written, or -1 with <paramref name="errno"/> set.</summary>
    long Write(SafeFileHandle handle, Iovec* iov, int count, long offset, out int errno);

    /// <summary><c>preadv</c>: bytes read (0 at end of file), or -1 with <paramref name="errno"/> set.</summary>
    long Read(SafeFileHandle handle, Iovec* iov, int count, long offset, out int errno);
}
