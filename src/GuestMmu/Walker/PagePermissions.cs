namespace Hypervisor.GuestMmu.Walker;

/// <summary>
/// What a translation allows for the access class it was made for (CPL, RFLAGS.AC and the implicit flag),
/// after both dimensions: guest paging rules (U/S, R/W with CR0.WP, NX, SMEP, SMAP) and the EPT spte.
/// </summary>
[Flags]
public enum PagePermissions : byte
{
    /// <summary>Nothing allowed.</summary>
    None = 0,

    /// <summary>Data reads are allowed.</summary>
    Read = 1 << 0,

    /// <summary>
    /// Data writes are allowed without another walk: the guest allows them, the guest PTE's dirty bit is set,
    /// the EPT spte is writable and (with EPT A/D on) its dirty bit is set.
    /// </summary>
    Write = 1 << 1,

    /// <summary>Instruction fetches are allowed.</summary>
    Execute = 1 << 2,

    /// <summary>The page is a user page (U/S set at every level).</summary>
    User = 1 << 3,
}
