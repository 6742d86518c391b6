namespace Hypervisor.HostMm;

/// <summary>What a host page fault did.</summary>
public enum FaultResult
{
    /// <summary>The PTE already allowed the access (a spurious fault); only accessed/dirty bits were set.</summary>
    AlreadyMapped,

    /// <summary>A new zeroed frame was mapped (demand-zero, write access).</summary>
    DemandZero,

    /// <summary>The shared zero page was mapped read-only (demand-zero, read access).</summary>
    ZeroPage,

    /// <summary>A write to a shared or read-only-mapped page got a private copy (copy-on-write break).</summary>
    CopyOnWrite,

    /// <summary>A write to an exclusively owned read-only-mapped page made it writable in place.</summary>
    WriteReuse,

    /// <summary>No mapping covers the address (SIGSEGV, SEGV_MAPERR).</summary>
    SegmentationFault,

    /// <summary>The mapping forbids this access (SIGSEGV, SEGV_ACCERR).</summary>
    ProtectionViolation,

    /// <summary>The page was read back from swap and mapped (a major fault).</summary>
    SwapIn,

    /// <summary>The page was found in the swap cache and mapped without I/O (a minor fault).</summary>
    SwapCacheHit,

    /// <summary>No frame could be allocated, even after reclaim (VM_FAULT_OOM).</summary>
    OutOfMemory,

    /// <summary>The page's swap read failed or did not match its checksum (VM_FAULT_SIGBUS); no data was mapped.</summary>
    MemoryFailure,

    /// <summary>A NUMA hinting fault: the PROT_NONE entry NUMA balancing left was made accessible again (and the page migrated to the faulting thread's node when it was elsewhere).</summary>
    NumaHint,
}
