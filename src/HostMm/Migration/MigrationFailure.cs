namespace Hypervisor.HostMm.Migration;

/// <summary>Why a page was not migrated (after Linux's <c>move_pages</c> per-page status values and migration failure reasons).</summary>
public enum MigrationFailure
{
    /// <summary>Migrated, or already on the target node.</summary>
    None,

    /// <summary>No VMA covers the address (<c>-EFAULT</c>).</summary>
    NotMapped,

    /// <summary>Nothing resident there: never touched, the zero page, or swapped out (<c>-ENOENT</c>).</summary>
    NotPresent,

    /// <summary>Mapped by more than one process and shared pages were not asked for (<c>-EACCES</c>, no MPOL_MF_MOVE_ALL).</summary>
    Shared,

    /// <summary>
    /// Busy through every retry pass (<c>-EBUSY</c>/<c>-EAGAIN</c>): locked by someone else, off the LRU (isolated by
    /// reclaim or another migration), under writeback, or a mapping could not be unmapped.
    /// </summary>
    Busy,

    /// <summary>
    /// A reference besides the mappings' (a get-user-pages caller: a secondary MMU's fault in progress, a host copy)
    /// held it through every retry pass, so its references could not be frozen (<c>folio_migrate_mapping</c>'s -EAGAIN).
    /// </summary>
    Referenced,

    /// <summary>The target node had no free frame (<c>-ENOMEM</c>; migration never falls back to another node).</summary>
    TargetNodeFull,
}
