using CsCheck;

namespace Hypervisor.Vmm.Tests.Fuzz;

/// <summary>
/// CsCheck generators of interpreter inputs: a page of instruction bytes — uniformly random, or instruction-shaped
/// (legacy and REX prefixes, one-, two- and three-byte opcodes, a ModRM byte and random operand bytes, so that far more
/// of the opcode map is reached than random bytes reach) — and starting registers that point into RAM, at its edges or anywhere.
/// </summary>
internal static class InstructionGen
{
    /// <summary>Bytes of code per input.</summary>
    public const int CodeBytes = 4096;

    private static readonly byte[] LegacyPrefixes = [0x66, 0x67, 0xF2, 0xF3, 0xF0, 0x2E, 0x36, 0x3E, 0x26, 0x64, 0x65];

    private static readonly ulong[] Pointers =
    [
        0, 1, 0x500, 0x1000, 0x3000, 0x9000, 0x7_FFF0, 0x8_0000, CpuTestMachineAddresses.Code, CpuTestMachineAddresses.Data,
        CpuTestMachineAddresses.Data + 0xFFF, 0x3F_FFFF, 0x40_0000, 0xFEE0_0000, 0xFEC0_0000, 0xFFFF_FFFF, 0x1_0000_0000,
        0x7FFF_FFFF_FFFF, 0x8000_0000_0000, 0xFFFF_8000_0000_0000, 0x8000_0000_0000_0000, ulong.MaxValue,
    ];

    private static readonly Gen<byte[]> Instruction =
        from prefixes in Gen.OneOf(LegacyPrefixes).Array[0, 2]
        from rex in Gen.Frequency((2, Gen.Const(Array.Empty<byte>())), (1, Gen.Byte[0x40, 0x4F].Select(b => new[] { b })))
        from escape in Gen.Frequency((3, Gen.Const(Array.Empty<byte>())), (3, Gen.Const(new byte[] { 0x0F })), (1, Gen.OneOf<byte[]>([0x0F, 0x38], [0x0F, 0x3A])))
        from opcode in Gen.Byte
        from modrm in Gen.Frequency((3, Gen.Byte), (1, Gen.Byte[0xC0, 0xFF]))
        from operands in Gen.Byte.Array[0, 6]
        select (byte[])[.. prefixes, .. rex, .. escape, opcode, modrm, .. operands];

    private static readonly Gen<byte[]> Shaped =
        from instructions in Instruction.Array[64, 400]
        select Page(instructions.SelectMany(i => i));

    /// <summary>A start register value: a pointer of interest, a small number, an address in RAM, or any.</summary>
    public static readonly Gen<ulong> Register = Gen.Frequency(
        (3, Gen.OneOf(Pointers)),
        (2, Gen.ULong[0, 0x100]),
        (2, Gen.ULong[0, 0x40_0000]),
        (1, Gen.ULong));

    /// <summary>An interpreter input: 32- or 64-bit, SSE on or off, code and registers (RSP on the stack but 1 in 8).</summary>
    public static readonly Gen<InstructionFuzzCase> Case =
        from bitness in Gen.OneOf(32, 64)
        from sse in Gen.Bool
        from code in Gen.Frequency((1, Gen.Byte.Array[CodeBytes]), (3, Shaped))
        from registers in Register.Array[16]
        from wildStack in Gen.Int[0, 7].Select(n => n == 0)
        select new InstructionFuzzCase(bitness, sse, code, WithStack(registers, wildStack));

    private static byte[] Page(IEnumerable<byte> bytes)
    {
        var page = new byte[CodeBytes];
        var n = 0;
        foreach (var b in bytes.Take(CodeBytes))
        {
            page[n++] = b;
        }

        return page;
    }

    private static ulong[] WithStack(ulong[] registers, bool wild)
    {
        if (!wild)
        {
            registers[4] = CpuTestMachineAddresses.StackTop;
        }

        return registers;
    }
}
