using Iced.Intel;

namespace Hypervisor.Vmm.Cpu;

/// <summary>One cached instruction: Iced's decoding plus what the interpreter chose for it at decode time.</summary>
internal struct DecodedInstruction
{
    /// <summary>The decoded instruction (its IP is the guest RIP it was decoded at).</summary>
    public Instruction Instruction;

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
}
