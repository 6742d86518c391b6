namespace Hypervisor.HostMm.Swap;

/// <summary>POSIX <c>struct iovec</c> (x86-64 and arm64 Linux: a pointer and a <c>size_t</c>).</summary>
internal struct Iovec
{
    /// <summary><c>iov_base</c>: the start of the buffer.</summary>
    public nint Base;

    /// <summary><c>iov_len</c>: its length in bytes.</summary>
    public nuint Length;
}
