using Hypervisor.HostMm.Swap;
using Microsoft.Win32.SafeHandles;

namespace Hypervisor.HostMm.Tests.Swap;

/// <summary>
/// The real <c>pwritev</c>/<c>preadv</c> (Linux only), made short or failing on purpose: each call moves at most
/// <see cref="MaxBytesPerCall"/> bytes; once <see cref="FailAfterBytes"/> bytes moved every call fails with
/// <see cref="Errno"/>; reads stop at <see cref="EndOfFile"/> as at the end of a truncated file; the first
/// <see cref="InterruptedCalls"/> calls fail with EINTR.
/// </summary>
internal sealed unsafe class ScriptedVectoredFileIo : IVectoredFileIo
{
    public long MaxBytesPerCall { get; set; } = long.MaxValue;

    public long FailAfterBytes { get; set; } = long.MaxValue;

    public int Errno { get; set; } = LinuxVectoredFileIo.Eio;

    public long EndOfFile { get; set; } = long.MaxValue;

    public int InterruptedCalls { get; set; }

    /// <summary>When set, every call throws it (as the runtime does when it cannot bind the import).</summary>
    public Exception? Throw { get; set; }

    public int Calls { get; private set; }

    public long BytesMoved { get; private set; }

    public long Write(SafeFileHandle handle, Iovec* iov, int count, long offset, out int errno) => Call(handle, iov, count, offset, write: true, out errno);

    public long Read(SafeFileHandle handle, Iovec* iov, int count, long offset, out int errno) => Call(handle, iov, count, offset, write: false, out errno);

    private long Call(SafeFileHandle handle, Iovec* iov, int count, long offset, bool write, out int errno)
    {
        Calls++;
        if (Throw is not null)
        {
            throw Throw;
        }

        if (InterruptedCalls > 0)
        {
            InterruptedCalls--;
            errno = LinuxVectoredFileIo.Eintr;
            return -1;
        }

        if (BytesMoved >= FailAfterBytes)
        {
            errno = Errno;
            return -1;
        }

        var budget = Math.Min(MaxBytesPerCall, FailAfterBytes - BytesMoved);
        if (!write)
        {
            budget = Math.Min(budget, Math.Max(0, EndOfFile - offset));
        }

        if (budget == 0)
        {
            errno = 0;
            return 0;
        }

        // The same vector cut to the budget (the last iovec shortened), through the real call.
        var cut = stackalloc Iovec[count];
        var n = 0;
        long total = 0;
        for (; n < count && total < budget; n++)
        {
            cut[n] = iov[n];
            var length = (long)Math.Min((ulong)(budget - total), (ulong)iov[n].Length);
            cut[n].Length = (nuint)length;
            total += length;
        }

        var moved = write
            ? LinuxVectoredFileIo.Instance.Write(handle, cut, n, offset, out errno)
            : LinuxVectoredFileIo.Instance.Read(handle, cut, n, offset, out errno);
        if (moved > 0)
        {
            BytesMoved += moved;
        }

        return moved;
    }
}
