namespace Hypervisor.Notifier;

/// <summary>Why a range is being invalidated (Linux's <c>enum mmu_notifier_event</c>).</summary>
public enum NotifierEvent
{
    /// <summary>The range is unmapped (munmap, exit) or moved away (mremap): the addresses lose their backing.</summary>
    Unmap = 0,

    /// <summary>Host PTEs are cleared or replaced while the VMA stays (MADV_DONTNEED, COW, KSM, reclaim, migration).</summary>
    Clear,

    /// <summary>Protection changed uniformly across a VMA (mprotect).</summary>
    ProtectionVma,

    /// <summary>Per-page protection changed; a mirror must re-read the host PTEs (page_mkclean, fork's write-protect).</summary>
    ProtectionPage,

    /// <summary>Soft-dirty tracking reset: same pages, same permissions.</summary>
    SoftDirty,

    /// <summary>The mm is dying; delivered only to interval subscribers.</summary>
    Release,

    /// <summary>Device-private migration collection; <see cref="NotifierRange.Owner"/> names the initiator.</summary>
    Migrate,

    /// <summary>PTEs converted to device-exclusive entries; <see cref="NotifierRange.Owner"/> names the caller.</summary>
    Exclusive,
}
