namespace Hypervisor.Vmm.Tests.Cpu;

/// <summary>The state an oracle case starts from and ends in: RAX, RCX, RDX and RFLAGS.</summary>
/// <param name="Rax">RAX (the destination or accumulator).</param>
/// <param name="Rcx">RCX (the source, or CL as the shift count).</param>
/// <param name="Rdx">RDX (the high half for MUL/DIV, the double-shift fill, the CMPXCHG source).</param>
/// <param name="Rflags">RFLAGS.</param>
public readonly record struct OracleOperands(ulong Rax, ulong Rcx, ulong Rdx, ulong Rflags);
