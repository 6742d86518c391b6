using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using Hypervisor.Vmm.Cpu;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Vmm.Tests.Cpu;

/// <summary>
/// Every SSE/SSE2 form in <see cref="SseOracleCatalog"/> run on the interpreter and on the host CPU with the same seeded
/// random XMM registers (random bits, and singles and doubles with the special values), general registers, arithmetic
/// flags and data block: XMM0–XMM3, RAX, RCX, the arithmetic flags and the data block must agree. MXCSR is the default
/// before each run on both sides, and MXCSR after it (the exception flags the form raised) is compared too.
/// </summary>
[NonParallelizable]
public sealed unsafe class SseOracleTests // unsafe: the native stub takes a pointer to its state block.
{
    private const int Iterations = 24;

    // State block: XMM0–3 at 0, RAX at 64, RCX at 72, RFLAGS at 80, MXCSR at 88, the 16-byte data block at 96.
    private const int RaxOffset = 64;
    private const int RcxOffset = 72;
    private const int FlagsOffset = 80;
    private const int MxcsrOffset = 88;
    private const int DataOffset = 96;
    private const int StateBytes = 128;

    private static readonly float[] Singles =
        [0f, -0f, 1f, -1f, 1.5f, 2.5f, -2.5f, 3f, 1e10f, -1e10f, 3e9f, float.NaN, float.PositiveInfinity, float.NegativeInfinity, 1e-40f, 65535.5f, 0.1f, 1e-20f, 1.0842022e-19f, 1.1754944e-38f, 3e38f];

    private static readonly double[] Doubles =
        [0d, -0d, 1d, -1d, 1.5d, 2.5d, -2.5d, 3d, 1e19, -1e19, 3e9, double.NaN, double.PositiveInfinity, double.NegativeInfinity, 1e-310, 0.1d, -7.75d, 1e-160, 1.4916681462400413e-154, 2.2250738585072014e-308, 1e308];

    private CpuTestMachine? _longMode;
    private CpuTestMachine? _protectedMode;

    private static IEnumerable<SseOracleCase> LongModeCases() => SseOracleCatalog.All();

    private static IEnumerable<SseOracleCase> ProtectedModeCases() => SseOracleCatalog.All().Where(c => !c.NeedsLongMode);

    [OneTimeSetUp]
    public void CreateMachines()
    {
        _longMode = new CpuTestMachine(64, X86Cpu.Cr4Osfxsr | X86Cpu.Cr4Osxmmexcpt);
        _protectedMode = new CpuTestMachine(32, X86Cpu.Cr4Osfxsr | X86Cpu.Cr4Osxmmexcpt);
    }

    [OneTimeTearDown]
    public void DisposeMachines()
    {
        _longMode?.Dispose();
        _protectedMode?.Dispose();
    }

    [Test]
    public void MatchesHostInLongMode([ValueSource(nameof(LongModeCases))] SseOracleCase form, [Values(3, 20261206)] int seed) =>
        Check(_longMode!, form, seed);

    [Test]
    public void MatchesHostInProtectedMode([ValueSource(nameof(ProtectedModeCases))] SseOracleCase form, [Values(3)] int seed) =>
        Check(_protectedMode!, form, seed);

    /// <summary>The same forms under MXCSR's other rounding modes (down, up, toward zero) and with FTZ and DAZ.</summary>
    [Test]
    public void MatchesHostUnderMxcsrModes([ValueSource(nameof(LongModeCases))] SseOracleCase form, [Values(0x3F80u, 0x5F80u, 0x7F80u, 0x9FC0u)] uint mxcsr) =>
        Check(_longMode!, form, 11, mxcsr);

    private static void Check(CpuTestMachine machine, SseOracleCase form, int seed, uint mxcsr = X86Cpu.MxcsrDefault)
    {
        Assume.That(NativeCode.IsSupported, Is.True, "the host oracle needs x86-64 Linux");
        var emulated = new Assembler(machine.Bitness);
        form.Emit(emulated, machine.Bitness);
        emulated.hlt();
        machine.Load(emulated);
        using var native = new NativeCode(Stub(form));
        var state = (byte*)NativeMemory.AlignedAlloc(StateBytes, 64);
        try
        {
            var random = new Random(seed);
            var mask = machine.Bitness == 64 ? ulong.MaxValue : uint.MaxValue;
            var (a, c, dx) = machine.Bitness == 64 ? (Register.RAX, Register.RCX, Register.RDX) : (Register.EAX, Register.ECX, Register.EDX);
            var failures = new List<string>();
            for (var n = 0; n < Iterations; n++)
            {
                var xmm = new Vector128<byte>[4];
                for (var r = 0; r < 4; r++)
                {
                    xmm[r] = RandomVector(random);
                }

                var data = RandomVector(random);
                var rax = RandomScalar(random);
                var rcx = RandomScalar(random);
                var flags = 2UL | ((ulong)random.Next() & (X86Cpu.FlagCf | X86Cpu.FlagPf | X86Cpu.FlagAf | X86Cpu.FlagZf | X86Cpu.FlagSf | X86Cpu.FlagOf));

                for (var r = 0; r < 4; r++)
                {
                    *(Vector128<byte>*)(state + (16 * r)) = xmm[r];
                }

                *(ulong*)(state + RaxOffset) = rax;
                *(ulong*)(state + RcxOffset) = rcx;
                *(ulong*)(state + FlagsOffset) = flags;
                *(uint*)(state + MxcsrOffset) = mxcsr;
                *(Vector128<byte>*)(state + DataOffset) = data;
                native.Call((ulong*)state);

                machine.Reset();
                machine.Cpu.SetMxcsr(mxcsr);
                for (var r = 0; r < 4; r++)
                {
                    machine.Cpu.SetXmm(r, xmm[r]);
                }

                machine.WriteBytes(CpuTestMachine.DataAddress, MemoryMarshal.AsBytes(new Span<Vector128<byte>>(ref data)));
                machine.RunFromStart(flags, (a, rax & mask), (c, rcx & mask), (dx, CpuTestMachine.DataAddress));

                var differences = new List<string>();
                for (var r = 0; r < 4; r++)
                {
                    var expected = *(Vector128<byte>*)(state + (16 * r));
                    var actual = machine.Cpu.GetXmm(r);
                    if (expected != actual)
                    {
                        differences.Add($"xmm{r} host {Hex(expected)} interpreter {Hex(actual)}");
                    }
                }

                Compare(differences, "rax", *(ulong*)(state + RaxOffset) & mask, machine[a] & mask);
                Compare(differences, "rcx", *(ulong*)(state + RcxOffset) & mask, machine[c] & mask);
                Compare(differences, "mxcsr", *(uint*)(state + MxcsrOffset), machine.Cpu.Mxcsr);
                Compare(differences, "flags", *(ulong*)(state + FlagsOffset) & X86Cpu.ArithmeticFlags, machine.Rflags & X86Cpu.ArithmeticFlags);
                var expectedData = *(Vector128<byte>*)(state + DataOffset);
                var actualData = Vector128.Create(machine.ReadBytes(CpuTestMachine.DataAddress, 16));
                if (expectedData != actualData)
                {
                    differences.Add($"data host {Hex(expectedData)} interpreter {Hex(actualData)}");
                }

                if (differences.Count > 0)
                {
                    failures.Add($"inputs xmm0 {Hex(xmm[0])} xmm1 {Hex(xmm[1])} data {Hex(data)} rax 0x{rax:x}: {string.Join("; ", differences)}");
                }
            }

            Assert.That(failures, Is.Empty, () => $"{form} in {machine.Bitness}-bit mode, MXCSR 0x{mxcsr:x}:{Environment.NewLine}{string.Join(Environment.NewLine, failures.Take(4))}");
        }
        finally
        {
            NativeMemory.AlignedFree(state);
        }
    }

    private static void Compare(List<string> differences, string what, ulong expected, ulong actual)
    {
        if (expected != actual)
        {
            differences.Add($"{what} host 0x{expected:x} interpreter 0x{actual:x}");
        }
    }

    private static string Hex(Vector128<byte> value) => $"{value.AsUInt64().GetElement(1):x16}_{value.AsUInt64().GetElement(0):x16}";

    private static Vector128<byte> RandomVector(Random random)
    {
        switch (random.Next(5))
        {
            case 0:
            case 1:
            {
                Span<byte> bytes = stackalloc byte[16];
                random.NextBytes(bytes);
                return Vector128.Create((ReadOnlySpan<byte>)bytes);
            }

            case 2:
                return Vector128.Create(Single(random), Single(random), Single(random), Single(random)).AsByte();
            case 3:
                return Vector128.Create(Double(random), Double(random)).AsByte();
            default:
                // Small integers: shift counts and values that convert exactly.
                return Vector128.Create((ulong)random.Next(-80, 80), (ulong)random.Next(0, 300)).AsByte();
        }
    }

    private static float Single(Random random) => random.Next(3) == 0 ? (float)((random.NextDouble() - 0.5) * 2000) : Singles[random.Next(Singles.Length)];

    private static double Double(Random random) => random.Next(3) == 0 ? (random.NextDouble() - 0.5) * 2e6 : Doubles[random.Next(Doubles.Length)];

    private static ulong RandomScalar(Random random) => random.Next(3) switch
    {
        0 => (ulong)random.NextInt64(),
        1 => (ulong)(long)random.Next(-1000, 1000),
        _ => BitConverter.SingleToUInt32Bits(Single(random)) | ((ulong)BitConverter.DoubleToUInt64Bits(Double(random)) & 0xFFFF_FFFF_0000_0000UL),
    };

    private static Assembler Stub(SseOracleCase form)
    {
        // The host thread's own MXCSR is kept on the stack and restored: the form runs under the state block's MXCSR
        // (another rounding mode, FTZ, DAZ), and .NET must not go on computing in it.
        var a = new Assembler(64);
        a.sub(rsp, 8);
        a.stmxcsr(__dword_ptr[rsp]);
        a.mov(r8, rdi);
        a.movdqu(xmm0, __xmmword_ptr[r8]);
        a.movdqu(xmm1, __xmmword_ptr[r8 + 16]);
        a.movdqu(xmm2, __xmmword_ptr[r8 + 32]);
        a.movdqu(xmm3, __xmmword_ptr[r8 + 48]);
        a.mov(rax, __qword_ptr[r8 + RaxOffset]);
        a.mov(rcx, __qword_ptr[r8 + RcxOffset]);
        a.lea(rdx, __[r8 + DataOffset]);
        a.ldmxcsr(__dword_ptr[r8 + MxcsrOffset]);
        a.push(__qword_ptr[r8 + FlagsOffset]);
        a.popfq();
        form.Emit(a, 64);
        a.pushfq();
        a.pop(r9);
        a.stmxcsr(__dword_ptr[r8 + MxcsrOffset]);
        a.movdqu(__xmmword_ptr[r8], xmm0);
        a.movdqu(__xmmword_ptr[r8 + 16], xmm1);
        a.movdqu(__xmmword_ptr[r8 + 32], xmm2);
        a.movdqu(__xmmword_ptr[r8 + 48], xmm3);
        a.mov(__qword_ptr[r8 + RaxOffset], rax);
        a.mov(__qword_ptr[r8 + RcxOffset], rcx);
        a.mov(__qword_ptr[r8 + FlagsOffset], r9);
        a.ldmxcsr(__dword_ptr[rsp]);
        a.add(rsp, 8);
        a.ret();
        return a;
    }
}
