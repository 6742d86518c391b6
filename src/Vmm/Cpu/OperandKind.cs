namespace Hypervisor.Vmm.Cpu;

/// <summary>How an operand of a cached instruction is read, decided once at decode time.</summary>
internal enum OperandKind : byte
{
    /// <summary>Anything else (segment, control or debug register, far pointer): read through Iced.</summary>
    Other,

    /// <summary>A general register (<see cref="DecodedInstruction.Reg0"/> / <see cref="DecodedInstruction.Reg1"/>).</summary>
    Register,

    /// <summary>The memory operand.</summary>
    Memory,

    /// <summary>The instruction's first immediate (<see cref="DecodedInstruction.Immediate"/>).</summary>
    Immediate,
}
