using System.Reflection;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Vmm.Tests.Cpu;

/// <summary>
/// The SSE/SSE2 forms checked against the host CPU (<see cref="SseOracleTests"/>): every implemented mnemonic with an
/// XMM source and with a memory source, the immediate forms at a few immediates, the general-register forms and the
/// stores. Forms are assembled by mnemonic name through Iced's <see cref="Assembler"/> methods.
/// </summary>
public static class SseOracleCatalog
{
    private static readonly string[] Binary =
    [
        "pand", "pandn", "por", "pxor", "andps", "andpd", "andnps", "andnpd", "orps", "orpd", "xorps", "xorpd",
        "paddb", "paddw", "paddd", "paddq", "psubb", "psubw", "psubd", "psubq", "paddsb", "paddsw", "paddusb", "paddusw",
        "psubsb", "psubsw", "psubusb", "psubusw", "pmullw", "pmulhw", "pmulhuw", "pmuludq", "pmaddwd", "psadbw", "pavgb",
        "pavgw", "pminub", "pmaxub", "pminsw", "pmaxsw", "pcmpeqb", "pcmpeqw", "pcmpeqd", "pcmpgtb", "pcmpgtw", "pcmpgtd",
        "psllw", "pslld", "psllq", "psrlw", "psrld", "psrlq", "psraw", "psrad",
        "punpcklbw", "punpcklwd", "punpckldq", "punpcklqdq", "punpckhbw", "punpckhwd", "punpckhdq", "punpckhqdq",
        "unpcklps", "unpcklpd", "unpckhps", "unpckhpd", "packsswb", "packuswb", "packssdw",
        "addps", "subps", "mulps", "divps", "minps", "maxps", "sqrtps", "rcpps", "rsqrtps",
        "addpd", "subpd", "mulpd", "divpd", "minpd", "maxpd", "sqrtpd",
        "cvtps2dq", "cvttps2dq", "cvtdq2ps", "cvtpd2dq", "cvttpd2dq", "cvtpd2ps",
        "movaps", "movups", "movapd", "movupd", "movdqa", "movdqu",
    ];

    private static readonly string[] ScalarSingle =
        ["addss", "subss", "mulss", "divss", "minss", "maxss", "sqrtss", "rcpss", "rsqrtss", "comiss", "ucomiss", "cvtss2sd", "movss"];

    private static readonly string[] ScalarDouble =
        ["addsd", "subsd", "mulsd", "divsd", "minsd", "maxsd", "sqrtsd", "comisd", "ucomisd", "cvtsd2ss", "movsd", "cvtps2pd", "cvtdq2pd", "movq"];

    private static readonly string[] Shuffles = ["pshufd", "pshuflw", "pshufhw", "shufps", "shufpd"];

    private static readonly string[] ImmediateShifts = ["psllw", "pslld", "psllq", "psrlw", "psrld", "psrlq", "psraw", "psrad", "pslldq", "psrldq"];

    private static readonly string[] Stores =
        ["movaps", "movups", "movapd", "movupd", "movdqa", "movdqu", "movntdq", "movntps", "movntpd", "movss", "movsd", "movq", "movd", "movlps", "movhps", "movlpd", "movhpd"];

    /// <summary>Every form.</summary>
    public static IEnumerable<SseOracleCase> All()
    {
        foreach (var name in Binary)
        {
            yield return Case($"{name} xmm0, xmm1", name, _ => [xmm0, xmm1]);
            yield return Case($"{name} xmm0, m128", name, b => [xmm0, Memory(b, 16)]);
        }

        foreach (var name in ScalarSingle)
        {
            yield return Case($"{name} xmm0, xmm1", name, _ => [xmm0, xmm1]);
            yield return Case($"{name} xmm0, m32", name, b => [xmm0, Memory(b, 4)]);
        }

        foreach (var name in ScalarDouble)
        {
            yield return Case($"{name} xmm0, xmm1", name, _ => [xmm0, xmm1]);
            yield return Case($"{name} xmm0, m64", name, b => [xmm0, Memory(b, 8)]);
        }

        foreach (var name in Shuffles)
        {
            foreach (var imm in new byte[] { 0x1B, 0xE4, 0x4E, 0x93 })
            {
                yield return Case($"{name} xmm0, xmm1, 0x{imm:x}", name, _ => [xmm0, xmm1, imm]);
            }

            yield return Case($"{name} xmm0, m128, 0x72", name, b => [xmm0, Memory(b, 16), (byte)0x72]);
        }

        foreach (var (name, lanes) in new[] { ("cmpps", 16), ("cmppd", 16), ("cmpss", 4), ("cmpsd", 8) })
        {
            for (byte predicate = 0; predicate < 8; predicate++)
            {
                var p = predicate;
                yield return Case($"{name} xmm0, xmm1, {p}", name, _ => [xmm0, xmm1, p]);
            }

            yield return Case($"{name} xmm0, m, 2", name, b => [xmm0, Memory(b, lanes), (byte)2]);
        }

        foreach (var name in ImmediateShifts)
        {
            foreach (var imm in new byte[] { 0, 3, 9, 17, 40, 70 })
            {
                yield return Case($"{name} xmm0, {imm}", name, _ => [xmm0, imm]);
            }
        }

        foreach (var name in Stores)
        {
            var size = name switch { "movss" or "movd" => 4, "movsd" or "movq" or "movlps" or "movhps" or "movlpd" or "movhpd" => 8, _ => 16 };
            yield return Case($"{name} m{size * 8}, xmm1", name, b => [Memory(b, size), xmm1]);
        }

        foreach (var name in new[] { "movlps", "movhps", "movlpd", "movhpd" })
        {
            yield return Case($"{name} xmm0, m64", name, b => [xmm0, Memory(b, 8)]);
        }

        yield return Case("movhlps xmm0, xmm1", "movhlps", _ => [xmm0, xmm1]);
        yield return Case("movlhps xmm0, xmm1", "movlhps", _ => [xmm0, xmm1]);
        yield return Case("movd xmm0, m32", "movd", b => [xmm0, Memory(b, 4)]);
        yield return Case("movd xmm0, eax", "movd", _ => [xmm0, eax]);
        yield return Case("movd eax, xmm1", "movd", _ => [eax, xmm1]);
        yield return Case("movq xmm0, rax", "movq", _ => [xmm0, rax], needsLongMode: true);
        yield return Case("movq rax, xmm1", "movq", _ => [rax, xmm1], needsLongMode: true);
        yield return Case("pmovmskb eax, xmm1", "pmovmskb", _ => [eax, xmm1]);
        yield return Case("movmskps eax, xmm1", "movmskps", _ => [eax, xmm1]);
        yield return Case("movmskpd eax, xmm1", "movmskpd", _ => [eax, xmm1]);
        yield return Case("pextrw eax, xmm1, 5", "pextrw", _ => [eax, xmm1, (byte)5]);
        yield return Case("pinsrw xmm0, eax, 3", "pinsrw", _ => [xmm0, eax, (byte)3]);
        yield return Case("pinsrw xmm0, m16, 6", "pinsrw", b => [xmm0, Memory(b, 2), (byte)6]);
        foreach (var name in new[] { "cvtsi2ss", "cvtsi2sd" })
        {
            yield return Case($"{name} xmm0, eax", name, _ => [xmm0, eax]);
            yield return Case($"{name} xmm0, m32", name, b => [xmm0, Memory(b, 4)]);
            yield return Case($"{name} xmm0, rax", name, _ => [xmm0, rax], needsLongMode: true);
        }

        foreach (var name in new[] { "cvtss2si", "cvttss2si", "cvtsd2si", "cvttsd2si" })
        {
            yield return Case($"{name} eax, xmm1", name, _ => [eax, xmm1]);
            yield return Case($"{name} rax, xmm1", name, _ => [rax, xmm1], needsLongMode: true);
            yield return Case($"{name} ecx, m", name, b => [ecx, Memory(b, name.Contains("ss", StringComparison.Ordinal) ? 4 : 8)]);
        }
    }

    private static AssemblerMemoryOperand Memory(int bitness, int size)
    {
        var m = bitness == 64 ? __[rdx] : __[edx];
        return size switch
        {
            16 => bitness == 64 ? __xmmword_ptr[rdx] : __xmmword_ptr[edx],
            8 => bitness == 64 ? __qword_ptr[rdx] : __qword_ptr[edx],
            4 => bitness == 64 ? __dword_ptr[rdx] : __dword_ptr[edx],
            2 => bitness == 64 ? __word_ptr[rdx] : __word_ptr[edx],
            _ => m,
        };
    }

    private static SseOracleCase Case(string text, string mnemonic, Func<int, object[]> operands, bool needsLongMode = false) =>
        new(text, (assembler, bitness) => Invoke(assembler, mnemonic, operands(bitness)), needsLongMode);

    /// <summary>Calls Iced's assembler method <paramref name="mnemonic"/> with <paramref name="operands"/> (an immediate as byte, sbyte or int).</summary>
    private static void Invoke(Assembler assembler, string mnemonic, object[] operands)
    {
        foreach (var method in typeof(Assembler).GetMethods(BindingFlags.Public | BindingFlags.Instance))
        {
            if (method.Name != mnemonic)
            {
                continue;
            }

            var parameters = method.GetParameters();
            if (parameters.Length != operands.Length)
            {
                continue;
            }

            var arguments = new object[operands.Length];
            var fits = true;
            for (var n = 0; n < operands.Length && fits; n++)
            {
                var type = parameters[n].ParameterType;
                if (operands[n] is byte imm)
                {
                    if (type == typeof(byte)) { arguments[n] = imm; }
                    else if (type == typeof(int)) { arguments[n] = (int)imm; }
                    else { fits = false; }
                }
                else if (type == operands[n].GetType())
                {
                    arguments[n] = operands[n];
                }
                else
                {
                    fits = false;
                }
            }

            if (fits)
            {
                method.Invoke(assembler, arguments);
                return;
            }
        }

        throw new InvalidOperationException($"Iced's assembler has no {mnemonic}({string.Join(", ", operands.Select(o => o.GetType().Name))})");
    }
}
