namespace Hypervisor.GuestMmu.Walker;

/// <summary>
/// The vCPU state that decides how a guest-virtual address is translated and checked: CR0, CR3, CR4, EFER,
/// the CPL and RFLAGS (raw architectural values; only the bits named below are interpreted).
/// </summary>
public readonly record struct PagingContext
{
    /// <summary>CR0.PE (bit 0): protected mode.</summary>
    public const ulong Cr0Pe = 1UL << 0;

    /// <summary>CR0.WP (bit 16): supervisor writes honour read-only pages.</summary>
    public const ulong Cr0Wp = 1UL << 16;

    /// <summary>CR0.PG (bit 31): paging on.</summary>
    public const ulong Cr0Pg = 1UL << 31;

    /// <summary>CR4.PSE (bit 4): 4 MiB pages in 32-bit paging (ignored by PAE and long mode, which always have large pages).</summary>
    public const ulong Cr4Pse = 1UL << 4;

    /// <summary>CR4.PAE (bit 5).</summary>
    public const ulong Cr4Pae = 1UL << 5;

    /// <summary>CR4.PGE (bit 7): global pages survive CR3 writes.</summary>
    public const ulong Cr4Pge = 1UL << 7;

    /// <summary>CR4.LA57 (bit 12): 5-level paging.</summary>
    public const ulong Cr4La57 = 1UL << 12;

    /// <summary>CR4.SMEP (bit 20): supervisor fetches from user pages fault.</summary>
    public const ulong Cr4Smep = 1UL << 20;

    /// <summary>CR4.SMAP (bit 21): supervisor data accesses to user pages fault unless RFLAGS.AC.</summary>
    public const ulong Cr4Smap = 1UL << 21;

    /// <summary>EFER.LME (bit 8): long mode enable.</summary>
    public const ulong EferLme = 1UL << 8;

    /// <summary>EFER.LMA (bit 10): long mode active.</summary>
    public const ulong EferLma = 1UL << 10;

    /// <summary>EFER.NXE (bit 11): the XD bit (63) of paging entries is honoured.</summary>
    public const ulong EferNxe = 1UL << 11;

    /// <summary>RFLAGS.AC (bit 18): alignment check / SMAP override for explicit supervisor accesses.</summary>
    public const ulong RflagsAc = 1UL << 18;

    /// <summary>The CR3 bits that hold the PML4 table's gpa (bits 12–51; MAXPHYADDR is 48, see the walker).</summary>
    public const ulong Cr3AddressMask = 0x000F_FFFF_FFFF_F000UL;

    /// <summary>CR0.</summary>
    public ulong Cr0 { get; init; }

    /// <summary>CR3: the gpa of the top-level guest page table.</summary>
    public ulong Cr3 { get; init; }

    /// <summary>CR4.</summary>
    public ulong Cr4 { get; init; }

    /// <summary>IA32_EFER.</summary>
    public ulong Efer { get; init; }

    /// <summary>RFLAGS.</summary>
    public ulong Rflags { get; init; }

    /// <summary>The current privilege level, 0 to 3.</summary>
    public int Cpl { get; init; }

    /// <summary>CR0.PG.</summary>
    public bool PagingEnabled => (Cr0 & Cr0Pg) != 0;

    /// <summary>CR0.WP.</summary>
    public bool WriteProtect => (Cr0 & Cr0Wp) != 0;

    /// <summary>CR4.PAE.</summary>
    public bool Pae => (Cr4 & Cr4Pae) != 0;

    /// <summary>CR4.PSE.</summary>
    public bool PageSizeExtensions => (Cr4 & Cr4Pse) != 0;

    /// <summary>CR4.PGE.</summary>
    public bool GlobalPages => (Cr4 & Cr4Pge) != 0;

    /// <summary>CR4.SMEP.</summary>
    public bool Smep => (Cr4 & Cr4Smep) != 0;

    /// <summary>CR4.SMAP.</summary>
    public bool Smap => (Cr4 & Cr4Smap) != 0;

    /// <summary>EFER.LMA.</summary>
    public bool LongModeActive => (Efer & EferLma) != 0;

    /// <summary>EFER.NXE.</summary>
    public bool NoExecuteEnabled => (Efer & EferNxe) != 0;

    /// <summary>RFLAGS.AC.</summary>
    public bool AlignmentCheck => (Rflags & RflagsAc) != 0;

    /// <summary>True at CPL 3.</summary>
    public bool IsUser => Cpl == 3;

    /// <summary>The paging mode these registers select.</summary>
    public PagingMode Mode =>
        !PagingEnabled ? PagingMode.None
        : !Pae ? PagingMode.Legacy32
        : !LongModeActive ? PagingMode.Pae
        : (Cr4 & Cr4La57) != 0 ? PagingMode.LongMode5Level
        : PagingMode.LongMode4Level;

    /// <summary>
    /// The bits whose change invalidates every cached translation of a <see cref="SoftTlb"/>: CR0.PG/WP,
    /// CR4.PSE/PAE/PGE/LA57/SMEP/SMAP and EFER.LMA/NXE (TLB entries hold permissions derived from them).
    /// </summary>
    public ulong TranslationControlBits =>
        (Cr0 & (Cr0Pg | Cr0Wp))
        | ((Cr4 & (Cr4Pse | Cr4Pae | Cr4Pge | Cr4La57 | Cr4Smep | Cr4Smap)) << 32)
        | ((Efer & (EferLma | EferNxe)) << 40);

    /// <summary>Paging off (protected mode, CPL 0): gva = gpa.</summary>
    public static PagingContext PagingOff => new() { Cr0 = Cr0Pe };

    /// <summary>
    /// 4-level long mode with the PML4 at <paramref name="cr3"/>: CR0.PE|PG|WP, CR4.PAE|PGE, EFER.LME|LMA|NXE,
    /// plus whatever the arguments add.
    /// </summary>
    /// <param name="cr3">The PML4 table's gpa.</param>
    /// <param name="cpl">The CPL, 0 to 3.</param>
    /// <param name="writeProtect">CR0.WP.</param>
    /// <param name="noExecute">EFER.NXE.</param>
    /// <param name="smep">CR4.SMEP.</param>
    /// <param name="smap">CR4.SMAP.</param>
    /// <param name="alignmentCheck">RFLAGS.AC.</param>
    /// <param name="globalPages">CR4.PGE.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="cpl"/> is not 0 to 3.</exception>
    public static PagingContext LongMode(
        Gpa cr3,
        int cpl = 0,
        bool writeProtect = true,
        bool noExecute = true,
        bool smep = false,
        bool smap = false,
        bool alignmentCheck = false,
        bool globalPages = true)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(cpl);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(cpl, 3);
        return new PagingContext
        {
            Cr0 = Cr0Pe | Cr0Pg | (writeProtect ? Cr0Wp : 0),
            Cr3 = cr3.Value,
            Cr4 = Cr4Pae | (globalPages ? Cr4Pge : 0) | (smep ? Cr4Smep : 0) | (smap ? Cr4Smap : 0),
            Efer = EferLme | EferLma | (noExecute ? EferNxe : 0),
            Rflags = 0x2 | (alignmentCheck ? RflagsAc : 0),
            Cpl = cpl,
        };
    }

    /// <summary>
    /// 32-bit paging (CR4.PAE clear) with the page directory at <paramref name="cr3"/>, or PAE paging with the
    /// page-directory-pointer table there (32-byte aligned): CR0.PE|PG|WP, no long mode, plus what the arguments add.
    /// </summary>
    /// <param name="cr3">The page directory's (or PDPT's) gpa, below 4 GiB.</param>
    /// <param name="pae">CR4.PAE: PAE paging instead of 32-bit paging.</param>
    /// <param name="cpl">The CPL, 0 to 3.</param>
    /// <param name="pse">CR4.PSE (4 MiB pages in 32-bit paging).</param>
    /// <param name="writeProtect">CR0.WP.</param>
    /// <param name="noExecute">EFER.NXE (PAE only: 32-bit paging has no XD bit).</param>
    /// <param name="smep">CR4.SMEP.</param>
    /// <param name="smap">CR4.SMAP.</param>
    /// <param name="alignmentCheck">RFLAGS.AC.</param>
    /// <param name="globalPages">CR4.PGE.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="cpl"/> is not 0 to 3, or <paramref name="cr3"/> is above 4 GiB.</exception>
    public static PagingContext Legacy(
        Gpa cr3,
        bool pae,
        int cpl = 0,
        bool pse = true,
        bool writeProtect = true,
        bool noExecute = false,
        bool smep = false,
        bool smap = false,
        bool alignmentCheck = false,
        bool globalPages = true)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(cpl);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(cpl, 3);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(cr3.Value, 0xFFFF_FFFFUL, nameof(cr3));
        return new PagingContext
        {
            Cr0 = Cr0Pe | Cr0Pg | (writeProtect ? Cr0Wp : 0),
            Cr3 = cr3.Value,
            Cr4 = (pae ? Cr4Pae : 0) | (pse ? Cr4Pse : 0) | (globalPages ? Cr4Pge : 0) | (smep ? Cr4Smep : 0) | (smap ? Cr4Smap : 0),
            Efer = noExecute ? EferNxe : 0,
            Rflags = 0x2 | (alignmentCheck ? RflagsAc : 0),
            Cpl = cpl,
        };
    }
}
