using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Vmm.Tests.Cpu;

/// <summary>Memory operands and registers spelled once for both modes: <c>[ebx+disp]</c> in 32-bit code, <c>[rbx+disp]</c> in 64-bit code.</summary>
internal static class Operand
{
    public static AssemblerMemoryOperand Byte(int bitness, int displacement = 0) => bitness == 64 ? __byte_ptr[rbx + displacement] : __byte_ptr[ebx + displacement];

    public static AssemblerMemoryOperand Word(int bitness, int displacement = 0) => bitness == 64 ? __word_ptr[rbx + displacement] : __word_ptr[ebx + displacement];

    public static AssemblerMemoryOperand Dword(int bitness, int displacement = 0) => bitness == 64 ? __dword_ptr[rbx + displacement] : __dword_ptr[ebx + displacement];

    public static AssemblerMemoryOperand Qword(int displacement = 0) => __qword_ptr[rbx + displacement];

    /// <summary>The stack pointer register of the mode.</summary>
    public static Register StackPointer(int bitness) => bitness == 64 ? Register.RSP : Register.ESP;

    /// <summary>Points RBX/EBX at the data area.</summary>
    public static void PointAtData(CpuTestMachine machine) => machine[Register.RBX] = CpuTestMachine.DataAddress;
}
