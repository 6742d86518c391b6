namespace Hypervisor.Vmm.Accel;

/// <summary>Writes a <see cref="RegisterSnapshot"/> as the report's register lines, the same for every accelerator.</summary>
public static class RegisterFormatter
{
    /// <summary>The register lines: RIP/RFLAGS/CPL/mode, the sixteen general registers, control registers, selectors and tables.</summary>
    /// <param name="r">The snapshot.</param>
    /// <returns>Seven lines, without line ends.</returns>
    public static string[] Lines(in RegisterSnapshot r) =>
    [
        $"RIP={r.Rip:x16} RFLAGS={r.Rflags:x8} CPL={r.Cpl} mode={r.Bitness}-bit",
        $"RAX={r.Rax:x16} RBX={r.Rbx:x16} RCX={r.Rcx:x16} RDX={r.Rdx:x16}",
        $"RSI={r.Rsi:x16} RDI={r.Rdi:x16} RBP={r.Rbp:x16} RSP={r.Rsp:x16}",
        $"R8 ={r.R8:x16} R9 ={r.R9:x16} R10={r.R10:x16} R11={r.R11:x16}",
        $"R12={r.R12:x16} R13={r.R13:x16} R14={r.R14:x16} R15={r.R15:x16}",
        $"CR0={r.Cr0:x8} CR2={r.Cr2:x16} CR3={r.Cr3:x16} CR4={r.Cr4:x8} EFER={r.Efer:x}",
        $"CS={r.Cs:x4} SS={r.Ss:x4} DS={r.Ds:x4} GDT={r.GdtBase:x}/{r.GdtLimit:x} IDT={r.IdtBase:x}/{r.IdtLimit:x}",
    ];

    /// <summary>The register lines joined with <see cref="Environment.NewLine"/>.</summary>
    /// <param name="r">The snapshot.</param>
    public static string Format(in RegisterSnapshot r) => string.Join(Environment.NewLine, Lines(r));
}
