namespace Hypervisor.HostMm;

/// <summary>A snapshot of one process's memory counters.</summary>
public readonly record struct MmStats
{
    /// <summary>Resident pages (mapped frames, the zero page excluded).</summary>
    public long RssPages { get; init; }

    /// <summary>Swap PTEs (Linux's <c>MM_SWAPENTS</c>, <c>VmSwap</c> in pages).</summary>
    public long SwapEntries { get; init; }

    /// <summary>Faults that read their page from swap (major faults).</summary>
    public long SwapInFaults { get; init; }

    /// <summary>Faults on a swap entry that found the page in the swap cache (minor faults).</summary>
    public long SwapCacheFaults { get; init; }

    /// <summary>Faults that failed because their swap read failed or its checksum did not match.</summary>
    public long MemoryFailureFaults { get; init; }

    /// <summary>Faults that failed because no frame could be allocated, even after reclaim.</summary>
    public long OutOfMemoryFaults { get; init; }

    /// <summary>VMAs.</summary>
    public int Vmas { get; init; }

    /// <summary>Pages covered by VMAs.</summary>
    public ulong MappedPages { get; init; }

    /// <summary>Page-table pages, all levels.</summary>
    public long PageTablePages { get; init; }

    /// <summary>Demand-zero faults that mapped a new frame.</summary>
    public long DemandZeroFaults { get; init; }

    /// <summary>Read faults that mapped the zero page.</summary>
    public long ZeroPageFaults { get; init; }

    /// <summary>Copy-on-write breaks.</summary>
    public long CopyOnWriteFaults { get; init; }

    /// <summary>Write faults that made an exclusive page writable in place.</summary>
    public long WriteReuseFaults { get; init; }

    /// <summary>Faults that found the access already allowed.</summary>
    public long SpuriousFaults { get; init; }

    /// <summary>Faults on unmapped addresses or forbidden accesses.</summary>
    public long FailedFaults { get; init; }

    /// <summary>get-user-pages calls.</summary>
    public long GetUserPagesCalls { get; init; }

    /// <summary>Pages whose PTE was cleared by munmap, MADV_DONTNEED or exit.</summary>
    public long PagesZapped { get; init; }

    /// <summary>PTEs changed by mprotect.</summary>
    public long PagesProtected { get; init; }

    /// <summary>PTEs moved by mremap.</summary>
    public long PagesMoved { get; init; }

    /// <summary>mmap, munmap, mprotect, mremap, madvise and fork calls, in that order.</summary>
    public (long Mmap, long Munmap, long Mprotect, long Mremap, long Madvise, long Fork) Calls { get; init; }
}
