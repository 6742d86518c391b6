using System.Runtime.Intrinsics;
using Hypervisor.Vmm.Cpu;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Vmm.Tests.Cpu;

/// <summary>
/// The SSE gates and state instructions: #UD without CR4.OSFXSR or with CR0.EM, #NM with CR0.TS, #GP for a misaligned
/// operand of an aligned form, MXCSR's reserved bits, FXSAVE/FXRSTOR and XSAVE/XRSTOR/XGETBV/XSETBV with their rules, and
/// the MMX forms (no MMX state) as #UD.
/// </summary>
public sealed class SseFaultTests
{
    private const ulong Sse = X86Cpu.Cr4Osfxsr | X86Cpu.Cr4Osxmmexcpt;
    private const ulong Data = CpuTestMachine.DataAddress;

    /// <summary>Runs <paramref name="body"/> with a handler on the vectors that sets ESI = 0x100 + vector and EDI = its error code (when it has one).</summary>
    private static CpuTestMachine Run(int bitness, ulong cr4, Action<Assembler> body, Action<CpuTestMachine>? setup = null)
    {
        var vectors = new[] { 6, 7, 13, 19 };
        var handlers = new Label[vectors.Length];
        var m = new CpuTestMachine(bitness, cr4);
        var a = new Assembler(bitness);
        for (var n = 0; n < handlers.Length; n++)
        {
            handlers[n] = a.CreateLabel();
        }

        a.mov(esi, 0);
        body(a);
        a.hlt();
        for (var n = 0; n < handlers.Length; n++)
        {
            a.Label(ref handlers[n]);
            a.mov(esi, 0x100 + vectors[n]);
            if (vectors[n] == 13)
            {
                if (bitness == 64) { a.pop(rdi); } else { a.pop(edi); }
            }

            a.hlt();
        }

        m.Load(a);
        for (var n = 0; n < handlers.Length; n++)
        {
            m.SetGate(vectors[n], m.AddressOf(handlers[n]));
        }

        setup?.Invoke(m);
        m.RunToHalt();
        return m;
    }

    private static AssemblerMemoryOperand At(int bitness, int offset) => bitness == 64 ? __[rbx + offset] : __[ebx + offset];

    [Test]
    public void SseWithoutCr4OsfxsrIsUndefined([Values(32, 64)] int bitness)
    {
        using var m = Run(bitness, 0, a => a.addps(xmm0, xmm1));
        Assert.That(m[Register.ESI], Is.EqualTo(0x106));
    }

    [Test]
    public void SseWithCr0EmIsUndefinedAndWithCr0TsIsDeviceNotAvailable([Values(32, 64)] int bitness, [Values(4, 8)] int cr0Bit)
    {
        using var m = Run(bitness, Sse, a =>
        {
            if (bitness == 64) { a.mov(rax, cr0); } else { a.mov(eax, cr0); }
            a.or(eax, cr0Bit);
            if (bitness == 64) { a.mov(cr0, rax); } else { a.mov(cr0, eax); }
            a.pxor(xmm0, xmm1);
        });
        Assert.That(m[Register.ESI], Is.EqualTo(cr0Bit == 4 ? 0x106 : 0x107));
    }

    [Test]
    public void FxsaveWithCr0TsOrEmIsDeviceNotAvailableAndCltsClearsTs([Values(4, 8)] int cr0Bit)
    {
        using var m = Run(64, Sse, a =>
        {
            a.mov(rbx, Data);
            a.mov(rax, cr0);
            a.or(eax, cr0Bit);
            a.mov(cr0, rax);
            a.fxsave(__[rbx]);
        });
        Assert.That(m[Register.ESI], Is.EqualTo(0x107));

        using var cleared = Run(64, Sse, a =>
        {
            a.mov(rax, cr0);
            a.or(eax, 8);
            a.mov(cr0, rax);
            a.clts();
            a.movaps(xmm0, xmm1);
        });
        Assert.That(cleared[Register.ESI], Is.EqualTo(0));
    }

    [TestCase("movaps load", true)]
    [TestCase("movdqa store", true)]
    [TestCase("addps m128", true)]
    [TestCase("movups load", false)]
    [TestCase("movdqu store", false)]
    [TestCase("addss m32", false)]
    [TestCase("movsd m64", false)]
    public void OnlyTheAlignedFormsFaultOnAMisalignedOperand(string form, bool faults)
    {
        using var m = Run(64, Sse, a =>
        {
            a.mov(rbx, Data + 8);
            switch (form)
            {
                case "movaps load": a.movaps(xmm0, __[rbx]); break;
                case "movdqa store": a.movdqa(__[rbx], xmm0); break;
                case "addps m128": a.addps(xmm0, __[rbx]); break;
                case "movups load": a.movups(xmm0, __[rbx]); break;
                case "movdqu store": a.movdqu(__[rbx], xmm0); break;
                case "addss m32": a.addss(xmm0, __[rbx]); break;
                default: a.movsd(xmm0, __qword_ptr[rbx]); break;
            }
        });
        Assert.That(m[Register.ESI], Is.EqualTo(faults ? 0x10DUL : 0UL));
        if (faults)
        {
            Assert.That(m[Register.EDI], Is.EqualTo(0), "#GP(0)");
        }
    }

    [Test]
    public void LdmxcsrLoadsAndStmxcsrStoresAndReservedBitsFault([Values(32, 64)] int bitness)
    {
        using var m = Run(bitness, Sse, a =>
        {
            a.mov(ebx, (uint)Data);
            a.mov(bitness == 64 ? __dword_ptr[rbx] : __dword_ptr[ebx], 0x7F80 | 0x40);
            a.ldmxcsr(At(bitness, 0));
            a.stmxcsr(At(bitness, 4));
            a.mov(bitness == 64 ? __dword_ptr[rbx + 8] : __dword_ptr[ebx + 8], 0x1_1F80);
            a.ldmxcsr(At(bitness, 8));
        });
        Assert.Multiple(() =>
        {
            Assert.That(m.ReadUInt32(Data + 4), Is.EqualTo(0x7FC0));
            Assert.That(m.Cpu.Mxcsr, Is.EqualTo(0x7FC0), "the faulting LDMXCSR changed nothing");
            Assert.That(m[Register.ESI], Is.EqualTo(0x10D));
        });
    }

    [Test]
    public void FxsaveAndFxrstorRoundTripTheLegacyArea([Values(32, 64)] int bitness)
    {
        var count = bitness == 64 ? 16 : 8;
        using var m = Run(bitness, Sse, a =>
        {
            a.mov(ebx, (uint)Data);
            a.fxsave(At(bitness, 0));
            a.pxor(xmm3, xmm3);
            a.pcmpeqb(xmm5, xmm5);
            a.mov(bitness == 64 ? __dword_ptr[rbx + 24] : __dword_ptr[ebx + 24], 0x3F80);
            a.fxrstor(At(bitness, 0));
            a.fxsave(At(bitness, 8));
        }, machine =>
        {
            for (var n = 0; n < 16; n++)
            {
                machine.Cpu.SetXmm(n, Vector128.Create((byte)(n + 1)));
            }
        });
        Assert.Multiple(() =>
        {
            Assert.That(m.ReadUInt32(Data), Is.EqualTo(0x037F), "FCW at its power-on value, FSW 0");
            Assert.That(m.ReadUInt32(Data + 28), Is.EqualTo(X86Cpu.MxcsrMask), "MXCSR_MASK");
            Assert.That(m.Cpu.Mxcsr, Is.EqualTo(0x3F80), "FXRSTOR loads MXCSR");
            for (var n = 0; n < 16; n++)
            {
                var expected = n < count ? Vector128.Create((byte)(n + 1)) : Vector128<byte>.Zero;
                Assert.That(Vector128.Create(m.ReadBytes(Data + 160 + (ulong)(16 * n), 16)), Is.EqualTo(expected), $"xmm{n} in the area");
            }

            Assert.That(m.Cpu.GetXmm(3), Is.EqualTo(Vector128.Create((byte)4)), "FXRSTOR restored xmm3");
            Assert.That(m.Cpu.GetXmm(5), Is.EqualTo(Vector128.Create((byte)6)), "FXRSTOR restored xmm5");
            Assert.That(m[Register.ESI], Is.EqualTo(0x10D), "a misaligned FXSAVE area is #GP");
        });
    }

    [Test]
    public void XsaveNeedsCr4OsxsaveAndCpuidMirrorsIt()
    {
        using var off = Run(64, Sse, a => a.xgetbv());
        Assert.That(off[Register.ESI], Is.EqualTo(0x106));

        using var m = Run(64, Sse | X86Cpu.Cr4Osxsave, a =>
        {
            a.mov(eax, 1);
            a.cpuid();
            a.mov(r10d, ecx);
            a.xor(ecx, ecx);
            a.mov(eax, 3);
            a.xor(edx, edx);
            a.xsetbv();
            a.xgetbv();
            a.mov(r11d, eax);
            a.mov(eax, 0xD);
            a.xor(ecx, ecx);
            a.cpuid();
            a.mov(r12d, eax);
            a.mov(r13d, ebx);
        });
        Assert.Multiple(() =>
        {
            Assert.That(m[Register.R10D] & (3u << 26), Is.EqualTo(3u << 26), "XSAVE and OSXSAVE");
            Assert.That(m[Register.R11D], Is.EqualTo(3));
            Assert.That(m[Register.R12D], Is.EqualTo(3), "leaf 0xD: x87 and SSE");
            Assert.That(m[Register.R13D], Is.EqualTo(CpuidModel.XsaveAreaBytes));
            Assert.That(m[Register.ESI], Is.EqualTo(0));
        });
    }

    [TestCase(0u, 0u)]
    [TestCase(2u, 0u)]
    [TestCase(7u, 0u)]
    [TestCase(3u, 1u)]
    public void XsetbvRefusesInvalidValuesAndRegisters(uint value, uint register)
    {
        using var m = Run(64, Sse | X86Cpu.Cr4Osxsave, a =>
        {
            a.mov(ecx, register);
            a.mov(eax, value);
            a.xor(edx, edx);
            a.xsetbv();
        });
        Assert.Multiple(() =>
        {
            Assert.That(m[Register.ESI], Is.EqualTo(0x10D));
            Assert.That(m.Cpu.Xcr0, Is.EqualTo(1));
        });
    }

    [Test]
    public void XsaveAndXrstorFollowXstateBvAndCheckTheHeader()
    {
        using var m = Run(64, Sse | X86Cpu.Cr4Osxsave, a =>
        {
            a.mov(rbx, Data);
            a.mov(ecx, 0);
            a.mov(eax, 3);
            a.xor(edx, edx);
            a.xsetbv();
            a.mov(eax, 3);
            a.xsave(__[rbx]);
            a.pcmpeqb(xmm1, xmm1);
            a.mov(eax, 3);
            a.xrstor(__[rbx]);
            a.movq(r10, xmm1);
            // XSTATE_BV without SSE: XRSTOR puts XMM in its init state (zero).
            a.mov(__qword_ptr[rbx + 512], 1);
            a.mov(eax, 3);
            a.xrstor(__[rbx]);
            a.movq(r11, xmm2);
            // A non-zero XCOMP_BV (no compaction here) is #GP.
            a.mov(__qword_ptr[rbx + 520], 1);
            a.mov(eax, 3);
            a.xrstor(__[rbx]);
        }, machine =>
        {
            for (var n = 0; n < 16; n++)
            {
                machine.Cpu.SetXmm(n, Vector128.Create((byte)(n + 1)));
            }
        });
        Assert.Multiple(() =>
        {
            Assert.That(m.ReadUInt64(Data + 512) & 3, Is.EqualTo(1), "the header as last written by the test");
            Assert.That(m[Register.R10], Is.EqualTo(0x0202_0202_0202_0202UL), "xmm1 restored");
            Assert.That(m[Register.R11], Is.EqualTo(0), "xmm2 initialised");
            Assert.That(m[Register.ESI], Is.EqualTo(0x10D));
        });
    }

    [Test]
    public void XsaveWritesXstateBvForTheRequestedComponents()
    {
        using var m = Run(64, Sse | X86Cpu.Cr4Osxsave, a =>
        {
            a.mov(rbx, Data);
            a.xor(ecx, ecx);
            a.mov(eax, 3);
            a.xor(edx, edx);
            a.xsetbv();
            a.mov(__qword_ptr[rbx + 512], 0);
            a.mov(eax, 2);
            a.xsave(__[rbx]);
        });
        Assert.That(m.ReadUInt64(Data + 512), Is.EqualTo(2));
    }

    [Test]
    public void MaskmovdquStoresTheSelectedBytesAtRdi([Values(32, 64)] int bitness)
    {
        using var m = Run(bitness, Sse, a =>
        {
            a.mov(edi, (uint)Data);
            a.maskmovdqu(xmm0, xmm1);
        }, machine =>
        {
            machine.WriteBytes(Data, Enumerable.Repeat((byte)0xEE, 16).ToArray());
            machine.Cpu.SetXmm(0, Vector128.Create((byte)1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16));
            machine.Cpu.SetXmm(1, Vector128.Create((byte)0x80, 0, 0xFF, 0x7F, 0x80, 0, 0x80, 0, 0x80, 0, 0x80, 0, 0x80, 0, 0x80, 0x01));
        });
        Assert.That(m.ReadBytes(Data, 16), Is.EqualTo(new byte[] { 1, 0xEE, 3, 0xEE, 5, 0xEE, 7, 0xEE, 9, 0xEE, 11, 0xEE, 13, 0xEE, 15, 0xEE }));
    }

    [Test]
    public void AnUnmaskedSimdExceptionIsXmOrUdAndLeavesTheDestination([Values] bool osxmmexcpt)
    {
        using var m = Run(64, X86Cpu.Cr4Osfxsr | (osxmmexcpt ? X86Cpu.Cr4Osxmmexcpt : 0), a =>
        {
            a.mov(rbx, Data);
            a.divss(xmm2, xmm1); // masked: ZE set, xmm2 = +inf
            a.mov(__dword_ptr[rbx], 0x1F80 & ~(1 << 9));
            a.ldmxcsr(__[rbx]);
            a.divss(xmm0, xmm1);
        }, machine =>
        {
            machine.Cpu.SetXmm(0, Vector128.CreateScalar(1.0f).AsByte());
            machine.Cpu.SetXmm(1, Vector128<byte>.Zero);
            machine.Cpu.SetXmm(2, Vector128.CreateScalar(2.0f).AsByte());
        });
        Assert.Multiple(() =>
        {
            Assert.That(m[Register.ESI], Is.EqualTo(osxmmexcpt ? 0x113UL : 0x106UL));
            Assert.That(m.Cpu.GetXmm(0).AsSingle().ToScalar(), Is.EqualTo(1.0f), "an unmasked exception leaves the destination");
            Assert.That(m.Cpu.GetXmm(2).AsSingle().ToScalar(), Is.EqualTo(float.PositiveInfinity));
            Assert.That(m.Cpu.Mxcsr & 0x3F, Is.EqualTo(X86Cpu.MxcsrDivideByZero));
        });
    }

    [Test]
    public void MmxFormsAreUndefined()
    {
        using var m = Run(64, Sse, a => a.paddb(mm0, mm1));
        Assert.That(m[Register.ESI], Is.EqualTo(0x106));
    }

    [Test]
    public void CpuidClaimsSseSse2FxsrAndTheFpuForItsControlInstructionsButNoMmx()
    {
        var (_, _, ecx, edx) = CpuidModel.Query(1, 0, 0);
        Assert.Multiple(() =>
        {
            Assert.That(edx & ((1u << 24) | (1u << 25) | (1u << 26)), Is.EqualTo((1u << 24) | (1u << 25) | (1u << 26)));
            Assert.That(edx & 1u, Is.EqualTo(1u), "FPU: an x86-64 OS refuses to boot without it");
            Assert.That(OpClassifier.IsImplemented(Mnemonic.Fninit) && OpClassifier.IsImplemented(Mnemonic.Fldcw) && OpClassifier.IsImplemented(Mnemonic.Fnstsw), "the control instructions the FPU bit promises first");
            Assert.That(edx & (1u << 23), Is.EqualTo(0), "no MMX");
            Assert.That(ecx & ((1u << 0) | (1u << 9) | (1u << 19) | (1u << 28)), Is.EqualTo(0), "no SSE3, SSSE3, SSE4.1, AVX");
        });
    }

    [Test]
    public void CvtRoundingFollowsMxcsr([Values(0u, 1u, 2u, 3u)] uint rc)
    {
        using var m = Run(64, Sse, a =>
        {
            a.mov(rbx, Data);
            a.mov(__dword_ptr[rbx], (int)(0x1F80 | (rc << 13)));
            a.ldmxcsr(__[rbx]);
            a.cvtsd2si(rax, xmm0);
            a.cvtss2si(ecx, xmm1);
        }, machine =>
        {
            machine.Cpu.SetXmm(0, Vector128.CreateScalar(-2.5).AsByte());
            machine.Cpu.SetXmm(1, Vector128.CreateScalar(3.5f).AsByte());
        });
        var expected = rc switch { 0 => (-2L, 4L), 1 => (-3L, 3L), 2 => (-2L, 4L), _ => (-2L, 3L) };
        Assert.That(((long)m[Register.RAX], (long)m[Register.ECX]), Is.EqualTo(expected));
    }
}
