namespace Hypervisor.GuestMmu.Walker;

/// <summary>The guest paging mode selected by CR0.PG, CR4.PAE and EFER.LMA.</summary>
public enum PagingMode
{
    /// <summary>CR0.PG clear: linear addresses (32 bits) are guest-physical addresses.</summary>
    None,

    /// <summary>Legacy 32-bit paging (CR0.PG set, CR4.PAE clear): 4-byte entries, two levels, 4 KiB pages and 4 MiB pages with CR4.PSE (PSE-36: physical bits 32–39 in the PDE).</summary>
    Legacy32,

    /// <summary>PAE paging outside long mode (CR0.PG and CR4.PAE set, EFER.LMA clear): four PDPTEs, then 8-byte entries in two levels, 4 KiB and 2 MiB pages, XD with EFER.NXE.</summary>
    Pae,

    /// <summary>4-level long-mode paging (CR0.PG, CR4.PAE, EFER.LMA) with 4 KiB, 2 MiB and 1 GiB pages.</summary>
    LongMode4Level,

    /// <summary>5-level paging (CR4.LA57). Not supported by the walker.</summary>
    LongMode5Level,
}
