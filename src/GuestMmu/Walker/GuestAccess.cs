namespace Hypervisor.GuestMmu.Walker;

/// <summary>
/// The kind of a guest memory access: exactly one of <see cref="Read"/>, <see cref="Write"/> or
/// <see cref="Execute"/> (the low two bits), optionally with <see cref="ImplicitSupervisor"/>.
/// </summary>
[Flags]
public enum GuestAccess : byte
{
    /// <summary>A data read.</summary>
    Read = 0,

    /// <summary>A data write.</summary>
    Write = 1,

    /// <summary>An instruction fetch.</summary>
    Execute = 2,

    /// <summary>
    /// An implicit supervisor-mode access (GDT/LDT/IDT/TSS reads and writes): checked with supervisor rules
    /// whatever the CPL, and always subject to SMAP, whatever RFLAGS.AC says. Meaningless with <see cref="Execute"/>.
    /// </summary>
    ImplicitSupervisor = 4,
}
