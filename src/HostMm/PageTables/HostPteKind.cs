namespace Hypervisor.HostMm.PageTables;

/// <summary>What a host PTE holds, as decoded by <see cref="HostPteEncoding.Classify"/>.</summary>
public enum HostPteKind
{
    /// <summary>The empty entry (all zero): never mapped, or cleared.</summary>
    None = 0,

    /// <summary>Bit 0 set: the entry maps a frame (x86 hardware format).</summary>
    Present,

    /// <summary>The page is on the swap device; the payload is its slot.</summary>
    Swap,

    /// <summary>The page is being migrated; the payload is the old frame, faults wait for the migration to end.</summary>
    Migration,

    /// <summary>
    /// A mapping kept with no access (mprotect PROT_NONE): the frame stays mapped and referenced, every
    /// access faults.
    /// </summary>
    ProtNone,
}
