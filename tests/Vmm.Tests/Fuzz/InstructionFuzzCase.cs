namespace Hypervisor.Vmm.Tests.Fuzz;

/// <summary>One interpreter-fuzz input: a page of instruction bytes and the registers it starts with.</summary>
/// <param name="Bitness">32 (flat protected mode, paging off) or 64 (long mode).</param>
/// <param name="Sse">True to start with CR4.OSFXSR and CR4.OSXMMEXCPT set, so SSE instructions execute.</param>
/// <param name="Code">The bytes written at the code address (one page).</param>
/// <param name="Registers">RAX … R15 in encoding order (RSP included; only the low 8 and 32 bits count in 32-bit mode).</param>
internal sealed record InstructionFuzzCase(int Bitness, bool Sse, byte[] Code, ulong[] Registers)
{
    /// <inheritdoc />
    public override string ToString() =>
        $"{Bitness}-bit{(Sse ? " SSE" : string.Empty)}, registers [{string.Join(", ", Registers.Select(r => $"0x{r:x}"))}], code: {Convert.ToHexString(Code)}";
}
