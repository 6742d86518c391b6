namespace Hypervisor.GuestMmu.Walker;

/// <summary>Why a translation ended with <see cref="TranslationStatus.Error"/> (a VM error, not a guest fault).</summary>
public enum WalkError
{
    /// <summary>No error.</summary>
    None,

    /// <summary>The host could not back a guest frame (unmapped or forbidden host memory): KVM's -EFAULT.</summary>
    HostFault,

    /// <summary>A guest page-table entry lives at a gpa without RAM (MMIO): hardware cannot walk it.</summary>
    PageTableInMmio,

    /// <summary>The guest MMU was released (the backing process exited).</summary>
    MmuReleased,

    /// <summary>The walk kept being invalidated under it (a shootdown storm or an EPT that never settles).</summary>
    RetryLimit,

    /// <summary>The guest enabled a paging mode the walker does not model (5-level long mode).</summary>
    UnsupportedPagingMode,

    /// <summary>The host had no frame for a guest page even after reclaim (<see cref="TwoDimensionalWalker.LastFailureDetail"/> says more).</summary>
    HostOutOfMemory,

    /// <summary>A guest page's contents could not be read back from swap (<see cref="TwoDimensionalWalker.LastFailureDetail"/> names the slot and cause).</summary>
    MemoryFailure,
}
