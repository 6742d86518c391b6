using System.Runtime.InteropServices;

namespace Hypervisor.Vmm.Accel.Kvm;

/// <summary>
/// The libc calls the kvm accelerator makes (x86-64 Linux, glibc). Every import sets the last P/Invoke error, read
/// with <see cref="Marshal.GetLastPInvokeError"/>. <c>ioctl</c> and <c>open</c> are variadic in C; on x86-64 Linux a
/// fixed-argument call with integer/pointer arguments passes them in the same registers, so the fixed overloads are sound.
/// </summary>
// unsafe: the imports take raw pointers to kernel structures and mapped memory.
internal static unsafe partial class KvmNative
{
    public const int ORdwr = 0x2;
    public const int OCloexec = 0x80000;

    public const int ProtRead = 0x1;
    public const int ProtWrite = 0x2;
    public const int ProtExec = 0x4;

    public const int MapShared = 0x01;
    public const int MapPrivate = 0x02;
    public const int MapAnonymous = 0x20;
    public const int MapNoReserve = 0x4000;

    public const int MadvMergeable = 12;

    public const int SigUnblock = 1;

    /// <summary>64-bit words in glibc's sigset_t (1024 signals).</summary>
    public const int SigsetWords = 16;

    public const int Eintr = 4;
    public const int Eagain = 11;
    public const int E2big = 7;

    /// <summary>mmap's failure value.</summary>
    public static readonly nint MapFailed = -1;

    private const string Libc = "libc";

    [LibraryImport(Libc, EntryPoint = "open", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    public static partial int Open(string path, int flags);

    [LibraryImport(Libc, EntryPoint = "close", SetLastError = true)]
    public static partial int Close(int fd);

    [LibraryImport(Libc, EntryPoint = "ioctl", SetLastError = true)]
    public static partial int Ioctl(int fd, nuint request, nint argument);

    [LibraryImport(Libc, EntryPoint = "ioctl", SetLastError = true)]
    public static partial int Ioctl(int fd, nuint request, void* argument);

    [LibraryImport(Libc, EntryPoint = "mmap", SetLastError = true)]
    public static partial nint Mmap(nint address, nuint length, int protection, int flags, int fd, nint offset);

    [LibraryImport(Libc, EntryPoint = "munmap", SetLastError = true)]
    public static partial int Munmap(nint address, nuint length);

    [LibraryImport(Libc, EntryPoint = "madvise", SetLastError = true)]
    public static partial int Madvise(nint address, nuint length, int advice);

    [LibraryImport(Libc, EntryPoint = "mprotect", SetLastError = true)]
    public static partial int Mprotect(nint address, nuint length, int protection);

    [LibraryImport(Libc, EntryPoint = "sigaction", SetLastError = true)]
    public static partial int Sigaction(int signal, KernelSigaction* action, KernelSigaction* oldAction);

    /// <summary>Returns 0 or an errno value (pthread functions do not set errno).</summary>
    [LibraryImport(Libc, EntryPoint = "pthread_sigmask")]
    public static partial int PthreadSigmask(int how, ulong* set, ulong* oldSet);

    [LibraryImport(Libc, EntryPoint = "pthread_self")]
    public static partial nuint PthreadSelf();

    /// <summary>Returns 0 or an errno value (pthread functions do not set errno).</summary>
    [LibraryImport(Libc, EntryPoint = "pthread_kill")]
    public static partial int PthreadKill(nuint thread, int signal);

    [LibraryImport(Libc, EntryPoint = "__libc_current_sigrtmax")]
    public static partial int CurrentSigRtMax();

    /// <summary>The symbolic name of <paramref name="errno"/> where it is one KVM commonly returns, else its number.</summary>
    /// <param name="errno">An errno value.</param>
    public static string ErrnoName(int errno) => errno switch
    {
        1 => "EPERM",
        2 => "ENOENT",
        4 => "EINTR",
        5 => "EIO",
        6 => "ENXIO",
        7 => "E2BIG",
        9 => "EBADF",
        11 => "EAGAIN",
        12 => "ENOMEM",
        13 => "EACCES",
        14 => "EFAULT",
        16 => "EBUSY",
        17 => "EEXIST",
        19 => "ENODEV",
        22 => "EINVAL",
        24 => "EMFILE",
        25 => "ENOTTY",
        38 => "ENOSYS",
        95 => "EOPNOTSUPP",
        _ => $"errno {errno}",
    };
}
