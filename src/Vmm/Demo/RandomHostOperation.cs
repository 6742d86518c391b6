namespace Hypervisor.Vmm.Demo;

/// <summary>The host operations the demo draws at random for <c>--ranges</c>.</summary>
internal enum RandomHostOperation
{
    /// <summary><c>madvise(MADV_DONTNEED)</c>.</summary>
    DontNeed,

    /// <summary><c>madvise(MADV_FREE)</c>.</summary>
    Free,

    /// <summary><c>mprotect(PROT_READ)</c>.</summary>
    ProtectRead,

    /// <summary><c>mprotect(PROT_READ|PROT_WRITE)</c>.</summary>
    ProtectReadWrite,

    /// <summary>A store to each page (a read where the mapping is read-only).</summary>
    Write,

    /// <summary><c>munmap</c>.</summary>
    Munmap,
}
