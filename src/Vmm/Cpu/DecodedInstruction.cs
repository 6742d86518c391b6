using Iced.Intel;

namespace Hypervisor.Vmm.Cpu;

/// <summary>
/// One cached instruction: Iced's decoding plus what the interpreter precomputed at decode time so that an
/// execution reads plain fields (operand kinds, register slots, the effective-address parts) instead of
/// unpacking Iced's encoding again.
/// </summary>
internal struct DecodedInstruction
{
    /// <summary>No register in <see cref="Base"/> / <see cref="Index"/>.</summary>
    public const byte NoRegister = 0xFF;

    /// <summary>The decoded instruction (its IP is the guest RIP it was decoded at).</summary>
    public Instruction Instruction;

    /// <summary>The first immediate operand, sign- or zero-extended as encoded (Iced's <c>GetImmediate</c>).</summary>
    public ulong Immediate;

    /// <summary>The memory operand's displacement (the absolute target for RIP-relative operands).</summary>
    public ulong Displacement;

    /// <summary>The RIP of the next instruction.</summary>
    public ulong NextIp;

    /// <summary>The near branch target (Jcc, JMP, CALL, LOOP, JrCXZ with a relative operand).</summary>
    public ulong Target;

    /// <summary>The condition of Jcc/SETcc/CMOVcc.</summary>
    public ConditionCode Condition;

    /// <summary>All ones in the operation size (for the specialised 32/64-bit forms).</summary>
    public ulong Mask;

    /// <summary>The handler.</summary>
    public Op Op;

    /// <summary>The operation size in bytes (1, 2, 4 or 8): operand 0's size, or the memory operand's.</summary>
    public byte Size;

    /// <summary>The address size in bytes of the memory operand (2, 4 or 8).</summary>
    public byte AddressSize;

    /// <summary>The memory operand's size in bytes (0 without one).</summary>
    public byte MemorySize;

    /// <summary>The memory operand's segment register (<see cref="SegmentRegister"/> index).</summary>
    public byte Segment;

    /// <summary>How operand 0 is read.</summary>
    public OperandKind Kind0;

    /// <summary>How operand 1 is read.</summary>
    public OperandKind Kind1;

    /// <summary>The operand index of <see cref="Immediate"/>, or 0xFF.</summary>
    public byte ImmediateOperand;

    /// <summary>The base register's GPR slot, or <see cref="NoRegister"/> (also for RIP-relative operands).</summary>
    public byte Base;

    /// <summary>The index register's GPR slot, or <see cref="NoRegister"/>.</summary>
    public byte Index;

    /// <summary>log2 of the index scale.</summary>
    public byte ScaleShift;

    /// <summary>Operand 0's register descriptor (see <c>X86Cpu.RegisterInfo</c>) when <see cref="Kind0"/> is a register.</summary>
    public ushort Reg0;

    /// <summary>Operand 1's register descriptor when <see cref="Kind1"/> is a register.</summary>
    public ushort Reg1;
}
