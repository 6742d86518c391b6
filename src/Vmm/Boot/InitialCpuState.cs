namespace Hypervisor.Vmm.Boot;

/// <summary>
/// The vCPU state a boot protocol hands to the guest: general registers, control registers, EFER, segment
/// caches and descriptor-table registers. Registers not set are zero.
/// </summary>
public readonly record struct InitialCpuState
{
    /// <summary>CR0.PE: protected mode.</summary>
    public const ulong Cr0Pe = 1UL << 0;

    /// <summary>CR0.ET: extension type (hard-wired 1 on modern CPUs).</summary>
    public const ulong Cr0Et = 1UL << 4;

    /// <summary>CR0.NE: native x87 error reporting.</summary>
    public const ulong Cr0Ne = 1UL << 5;

    /// <summary>CR0.WP: supervisor writes honour read-only pages.</summary>
    public const ulong Cr0Wp = 1UL << 16;

    /// <summary>CR0.PG: paging.</summary>
    public const ulong Cr0Pg = 1UL << 31;

    /// <summary>CR4.PAE: physical address extension (required for long mode).</summary>
    public const ulong Cr4Pae = 1UL << 5;

    /// <summary>EFER.LME: long mode enable.</summary>
    public const ulong EferLme = 1UL << 8;

    /// <summary>EFER.LMA: long mode active.</summary>
    public const ulong EferLma = 1UL << 10;

    /// <summary>RFLAGS with only the always-one bit 1 set.</summary>
    public const ulong RflagsReserved = 0x2;

    /// <summary>RAX.</summary>
    public ulong Rax { get; init; }

    /// <summary>RBX.</summary>
    public ulong Rbx { get; init; }

    /// <summary>RSI (Firecracker: the zero page / boot-params pointer).</summary>
    public ulong Rsi { get; init; }

    /// <summary>RDI.</summary>
    public ulong Rdi { get; init; }

    /// <summary>RSP.</summary>
    public ulong Rsp { get; init; }

    /// <summary>RBP.</summary>
    public ulong Rbp { get; init; }

    /// <summary>RIP: the entry point.</summary>
    public ulong Rip { get; init; }

    /// <summary>RFLAGS.</summary>
    public ulong Rflags { get; init; }

    /// <summary>CR0.</summary>
    public ulong Cr0 { get; init; }

    /// <summary>CR3: the physical address of the top-level page table (0 with paging off).</summary>
    public ulong Cr3 { get; init; }

    /// <summary>CR4.</summary>
    public ulong Cr4 { get; init; }

    /// <summary>IA32_EFER.</summary>
    public ulong Efer { get; init; }

    /// <summary>CS cache.</summary>
    public SegmentCache Cs { get; init; }

    /// <summary>DS cache.</summary>
    public SegmentCache Ds { get; init; }

    /// <summary>ES cache.</summary>
    public SegmentCache Es { get; init; }

    /// <summary>FS cache.</summary>
    public SegmentCache Fs { get; init; }

    /// <summary>GS cache.</summary>
    public SegmentCache Gs { get; init; }

    /// <summary>SS cache.</summary>
    public SegmentCache Ss { get; init; }

    /// <summary>TR cache.</summary>
    public SegmentCache Tr { get; init; }

    /// <summary>GDTR base.</summary>
    public ulong GdtBase { get; init; }

    /// <summary>GDTR limit (size − 1).</summary>
    public ushort GdtLimit { get; init; }

    /// <summary>IDTR base.</summary>
    public ulong IdtBase { get; init; }

    /// <summary>IDTR limit (size − 1).</summary>
    public ushort IdtLimit { get; init; }
    /// <summary>
    /// The state of an application processor that has received a startup IPI with <paramref name="vector"/> after
    /// INIT (SDM vol. 3 §10.4 and the reset state of §9.1.1): real-address mode at <c>vector × 0x1000</c> (CS =
    /// vector × 0x100, IP = 0), paging and protection off, CR0 as after INIT (0x60000010: CD, NW, ET), data segments
    /// at base 0 with 64 KiB limits, the IVT at 0 and a 64 KiB GDTR limit.
    /// </summary>
    /// <param name="vector">The SIPI vector: the page number (below 1 MiB) where the processor starts.</param>
    public static InitialCpuState ForStartupIpi(byte vector)
    {
        var data = new SegmentCache(0, 0, 0xFFFF, 0x3, true, 0, false, true, false, false);
        return new InitialCpuState
        {
            Rip = 0,
            Rflags = RflagsReserved,
            Cr0 = 0x6000_0000 | Cr0Et,
            Cs = new SegmentCache((ushort)(vector << 8), (ulong)vector << 12, 0xFFFF, 0xB, true, 0, false, true, false, false),
            Ds = data,
            Es = data,
            Fs = data,
            Gs = data,
            Ss = data,
            Tr = new SegmentCache(0, 0, 0xFFFF, 0xB, true, 0, false, false, false, false),
            GdtLimit = 0xFFFF,
            IdtLimit = 0x3FF,
        };
    }
}
