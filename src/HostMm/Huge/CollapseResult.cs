namespace Hypervisor.HostMm.Huge;

/// <summary>What one collapse attempt of a 2 MiB range found (after Linux's khugepaged <c>SCAN_*</c> results).</summary>
public enum CollapseResult
{
    /// <summary>The 512 small pages became one huge page (<c>SCAN_SUCCEED</c>).</summary>
    Collapsed,

    /// <summary>No VMA, or one where huge pages are not allowed here (mode, advice, the aligned 2 MiB not covered).</summary>
    NotEligible,

    /// <summary>Already a huge leaf (<c>SCAN_PMD_MAPPED</c>).</summary>
    AlreadyHuge,

    /// <summary>No page table at all: nothing was ever touched there (<c>SCAN_PMD_NULL</c>).</summary>
    Empty,

    /// <summary>More none or zero-page entries than <see cref="Khugepaged.MaxPtesNone"/> (<c>SCAN_EXCEED_NONE_PTE</c>).</summary>
    ExceedNone,

    /// <summary>A swap or migration entry, or a PROT_NONE mapping (<c>SCAN_EXCEED_SWAP_PTE</c> / <c>SCAN_PTE_NON_PRESENT</c>).</summary>
    NonPresent,

    /// <summary>
    /// A page mapped by another process too, a KSM page, or one in the swap cache (<c>SCAN_EXCEED_SHARED_PTE</c>,
    /// <c>SCAN_PAGE_ANON</c>): only exclusive anonymous pages collapse here (Linux allows up to 256 shared ones).
    /// </summary>
    Shared,

    /// <summary>No page in the range was referenced, by the CPU's accessed bits or the secondary MMUs' test_young (<c>SCAN_LACK_REFERENCED_PAGE</c>).</summary>
    LackReferenced,

    /// <summary>A page is locked, isolated or has an extra reference (<c>SCAN_PAGE_LOCK</c> / <c>SCAN_PAGE_COUNT</c>).</summary>
    Busy,

    /// <summary>No whole free 2 MiB block, or no room in the cgroup (<c>SCAN_ALLOC_HUGE_PAGE_FAIL</c>).</summary>
    AllocationFailed,
}
