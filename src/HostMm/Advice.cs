namespace Hypervisor.HostMm;

/// <summary>madvise advice values the host knows.</summary>
public enum Advice
{
    /// <summary>MADV_DONTNEED: drop the pages now; later reads see zeroes.</summary>
    DontNeed,

    /// <summary>MADV_FREE: the pages may be discarded lazily while they stay clean.</summary>
    Free,

    /// <summary>MADV_PAGEOUT: reclaim the private pages now (swap them out, or discard lazily freed ones).</summary>
    PageOut,

    /// <summary>MADV_MERGEABLE: let KSM merge identical pages (not supported yet).</summary>
    Mergeable,

    /// <summary>MADV_UNMERGEABLE: undo MADV_MERGEABLE (not supported yet).</summary>
    Unmergeable,

    /// <summary>MADV_HUGEPAGE: prefer 2 MiB backing (not supported yet).</summary>
    HugePage,

    /// <summary>MADV_NOHUGEPAGE: never use 2 MiB backing (not supported yet).</summary>
    NoHugePage,

    /// <summary>MADV_COLD: the private pages are unlikely to be used soon: age them (move them to the inactive list, old).</summary>
    Cold,
}
