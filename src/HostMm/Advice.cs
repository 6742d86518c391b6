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

    /// <summary>MADV_MERGEABLE: let KSM merge identical pages.</summary>
    Mergeable,

    /// <summary>MADV_UNMERGEABLE: undo MADV_MERGEABLE (break the KSM pages of the range).</summary>
    Unmergeable,

    /// <summary>MADV_HUGEPAGE: back the range with 2 MiB pages where it can (under <see cref="ThpMode.Madvise"/> or <see cref="ThpMode.Always"/>).</summary>
    HugePage,

    /// <summary>MADV_NOHUGEPAGE: never back the range with 2 MiB pages.</summary>
    NoHugePage,

    /// <summary>MADV_COLD: the private pages are unlikely to be used soon: age them (move them to the inactive list, old).</summary>
    Cold,
}
