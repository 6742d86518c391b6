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
}
