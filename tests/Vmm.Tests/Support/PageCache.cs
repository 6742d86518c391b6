using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace Hypervisor.Vmm.Tests.Support;

/// <summary>How much of a file the OS page cache holds (Linux's <c>mincore</c> over a shared read-only mapping, as <c>fincore</c> does).</summary>
// unsafe: mmap and mincore take and return raw addresses.
internal static unsafe partial class PageCache
{
    private const int ProtRead = 1;
    private const int MapShared = 1;

    /// <summary>The file's 4 KiB pages that are in the page cache now.</summary>
    /// <exception cref="IOException">The file cannot be mapped or asked.</exception>
    public static long ResidentPages(string path)
    {
        using var handle = File.OpenHandle(path, FileMode.Open, FileAccess.Read);
        var length = RandomAccess.GetLength(handle);
        var pages = (length + 4095) / 4096;
        var address = Mmap(0, (nuint)length, ProtRead, MapShared, handle, 0);
        if (address == -1)
        {
            throw new IOException($"mmap of '{path}' failed: errno {Marshal.GetLastPInvokeError()}");
        }

        try
        {
            var vector = new byte[pages];
            fixed (byte* v = vector)
            {
                if (Mincore(address, (nuint)length, v) != 0)
                {
                    throw new IOException($"mincore of '{path}' failed: errno {Marshal.GetLastPInvokeError()}");
                }
            }

            return vector.LongCount(b => (b & 1) != 0);
        }
        finally
        {
            _ = Munmap(address, (nuint)length);
        }
    }

    [LibraryImport("libc", EntryPoint = "mmap", SetLastError = true)]
    private static partial nint Mmap(nint address, nuint length, int protection, int flags, SafeFileHandle fd, long offset);

    [LibraryImport("libc", EntryPoint = "mincore", SetLastError = true)]
    private static partial int Mincore(nint address, nuint length, byte* vector);

    [LibraryImport("libc", EntryPoint = "munmap", SetLastError = true)]
    private static partial int Munmap(nint address, nuint length);
}
