namespace Hypervisor.Vmm.Accel;

/// <summary>
/// One vCPU's architectural state at a stop, as both accelerators report it: the interpreter from its own fields,
/// the kvm accelerator from KVM_GET_REGS and KVM_GET_SREGS. <see cref="RegisterFormatter"/> writes it for reports,
/// so the two can be compared line for line.
/// </summary>
public readonly record struct RegisterSnapshot
{
    /// <summary>RAX.</summary>
    public ulong Rax { get; init; }

    /// <summary>RBX.</summary>
    public ulong Rbx { get; init; }

    /// <summary>RCX.</summary>
    public ulong Rcx { get; init; }

    /// <summary>RDX.</summary>
    public ulong Rdx { get; init; }

    /// <summary>RSI.</summary>
    public ulong Rsi { get; init; }

    /// <summary>RDI.</summary>
    public ulong Rdi { get; init; }

    /// <summary>RBP.</summary>
    public ulong Rbp { get; init; }

    /// <summary>RSP.</summary>
    public ulong Rsp { get; init; }

    /// <summary>R8.</summary>
    public ulong R8 { get; init; }

    /// <summary>R9.</summary>
    public ulong R9 { get; init; }

    /// <summary>R10.</summary>
    public ulong R10 { get; init; }

    /// <summary>R11.</summary>
    public ulong R11 { get; init; }

    /// <summary>R12.</summary>
    public ulong R12 { get; init; }

    /// <summary>R13.</summary>
    public ulong R13 { get; init; }

    /// <summary>R14.</summary>
    public ulong R14 { get; init; }

    /// <summary>R15.</summary>
    public ulong R15 { get; init; }

    /// <summary>RIP.</summary>
    public ulong Rip { get; init; }

    /// <summary>RFLAGS.</summary>
    public ulong Rflags { get; init; }

    /// <summary>The current privilege level (CS.DPL).</summary>
    public int Cpl { get; init; }

    /// <summary>The code size in force: 16, 32 or 64 bits.</summary>
    public int Bitness { get; init; }

    /// <summary>CR0.</summary>
    public ulong Cr0 { get; init; }

    /// <summary>CR2 (the last page-fault address).</summary>
    public ulong Cr2 { get; init; }

    /// <summary>CR3.</summary>
    public ulong Cr3 { get; init; }

    /// <summary>CR4.</summary>
    public ulong Cr4 { get; init; }

    /// <summary>EFER.</summary>
    public ulong Efer { get; init; }

    /// <summary>The CS selector.</summary>
    public ushort Cs { get; init; }

    /// <summary>The SS selector.</summary>
    public ushort Ss { get; init; }

    /// <summary>The DS selector.</summary>
    public ushort Ds { get; init; }

    /// <summary>GDTR's base.</summary>
    public ulong GdtBase { get; init; }

    /// <summary>GDTR's limit.</summary>
    public ushort GdtLimit { get; init; }

    /// <summary>IDTR's base.</summary>
    public ulong IdtBase { get; init; }

    /// <summary>IDTR's limit.</summary>
    public ushort IdtLimit { get; init; }
}
