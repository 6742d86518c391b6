using Iced.Intel;

namespace Hypervisor.Vmm.Tests.Cpu;

/// <summary>
/// One SSE/SSE2 form checked against the host CPU: code that reads and writes only XMM0–XMM3, RAX, RCX, RFLAGS and
/// the 16-byte data block RDX (EDX) points at. The emitter is told the mode, so a memory operand can name EDX in
/// 32-bit protected mode.
/// </summary>
/// <param name="name">The test name (the instruction as written).</param>
/// <param name="emit">Emits the instruction under test for a mode (32 or 64).</param>
/// <param name="needsLongMode">True when the code only exists in 64-bit mode (a 64-bit GPR operand).</param>
public sealed class SseOracleCase(string name, Action<Assembler, int> emit, bool needsLongMode = false)
{
    /// <summary>The test name.</summary>
    public string Name { get; } = name;

    /// <summary>Emits the instruction under test for a mode.</summary>
    public Action<Assembler, int> Emit { get; } = emit;

    /// <summary>True when the code only exists in 64-bit mode.</summary>
    public bool NeedsLongMode { get; } = needsLongMode;

    /// <inheritdoc />
    public override string ToString() => Name;
}
