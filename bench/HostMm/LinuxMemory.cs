using System.Runtime.InteropServices;

namespace Hypervisor.Bench.HostMm;

/// <summary>The real kernel's anonymous memory calls, for running the same operations on both sides.</summary>
internal static partial class LinuxMemory
{
    public const int ProtRead = 1;
    public const int ProtWrite = 2;
    public const int ProtExec = 4;

    private const int MapPrivate = 0x02;
    private const int MapAnonymousFlag = 0x20;

    public static nint MapAnonymous(nuint length, int protection)
    {
        var address = Mmap(0, length, protection, MapPrivate | MapAnonymousFlag, -1, 0);
        if (address == -1)
        {
            throw new InvalidOperationException($"mmap of {length} bytes failed: errno {Marshal.GetLastPInvokeError()}");
        }

        return address;
    }

    public static void Unmap(nint address, nuint length) => Check(Munmap(address, length), "munmap");

    public static void Protect(nint address, nuint length, int protection) => Check(Mprotect(address, length, protection), "mprotect");

    private static void Check(int result, string call)
    {
        if (result != 0)
        {
            throw new InvalidOperationException($"{call} failed: errno {Marshal.GetLastPInvokeError()}");
        }
    }

    [LibraryImport("libc", EntryPoint = "mmap", SetLastError = true)]
    private static partial nint Mmap(nint address, nuint length, int protection, int flags, int fd, nint offset);

    [LibraryImport("libc", EntryPoint = "munmap", SetLastError = true)]
    private static partial int Munmap(nint address, nuint length);

    [LibraryImport("libc", EntryPoint = "mprotect", SetLastError = true)]
    private static partial int Mprotect(nint address, nuint length, int protection);
}
