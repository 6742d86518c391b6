namespace Hypervisor.HostMm;

/// <summary>
/// The rule a caller's value broke in the host memory manager; carried through <see cref="IInputError"/> by
/// the host's input exceptions. (Bad host ranges are <see cref="InvalidRangeException"/> with a
/// <see cref="NotifierRule"/>.)
/// </summary>
public enum HostMmRule
{
    /// <summary>An operation that needs every page of its range mapped (mprotect, madvise) found a hole.</summary>
    RangeNotFullyMapped,

    /// <summary>mremap's old range does not lie inside one mapping.</summary>
    RangeNotInOneMapping,

    /// <summary>A mapping was placed over addresses an existing VMA covers: VMAs of one mm never overlap.</summary>
    OverlappingMapping,

    /// <summary>No free range of the user address space is large enough for the mapping.</summary>
    NoFreeAddressRange,

    /// <summary>mremap cannot grow a mapping in place (the addresses after it are taken) and was not allowed to move it.</summary>
    CannotGrowInPlace,

    /// <summary>A protection has bits other than Read, Write and Execute.</summary>
    UndefinedProtectionBits,

    /// <summary>A protection grants Write or Execute without Read, which x86 page tables cannot express.</summary>
    WriteOrExecuteWithoutRead,

    /// <summary>VMA flags have bits other than Mergeable, HugePage and NoHugePage.</summary>
    UndefinedVmaFlags,

    /// <summary>VMA flags set both HugePage and NoHugePage.</summary>
    ConflictingHugePageFlags,

    /// <summary>The host's own read or write of process memory hit an address that no mapping covers.</summary>
    AddressNotMapped,

    /// <summary>The host's own read or write of process memory hit a mapping that does not allow the access.</summary>
    AccessNotPermitted,

    /// <summary>Host memory options ask for a NUMA node count outside 1 to <see cref="Frames.HostMemoryOptions.MaxNodeCount"/>.</summary>
    NodeCountOutOfRange,

    /// <summary>Host memory options ask for a RAM size outside the supported minimum and maximum.</summary>
    TotalBytesOutOfRange,

    /// <summary>Host memory options ask for a RAM size that is not a multiple of 2 MiB per node.</summary>
    TotalBytesNotNodeAligned,

    /// <summary>A KSM knob (pages_to_scan, sleep_millisecs, max_page_sharing, run) was given a value its rule refuses.</summary>
    InvalidKsmSetting,

    /// <summary>A NUMA node outside the host's nodes was named (move_pages, migrate_pages, mbind, a policy).</summary>
    NodeOutOfRange,
}
