using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Vmm.Tests.Cpu;

/// <summary>
/// Every ALU form in <see cref="OracleCatalog"/> run on the interpreter and on the host CPU with the same seeded
/// random operands; results and the SDM-defined flags must agree. 32-bit protected mode compares the low 32 bits.
/// </summary>
[NonParallelizable]
public sealed unsafe class HostOracleTests // unsafe: the native stub takes a pointer to its state block.
{
    private const int Iterations = 40;

    private CpuTestMachine? _longMode;
    private CpuTestMachine? _protectedMode;

    private static IEnumerable<OracleCase> LongModeCases() => OracleCatalog.All();

    private static IEnumerable<OracleCase> ProtectedModeCases() => OracleCatalog.All().Where(c => !c.NeedsLongMode);

    [OneTimeSetUp]
    public void CreateMachines()
    {
        _longMode = new CpuTestMachine(64);
        _protectedMode = new CpuTestMachine(32);
    }

    [OneTimeTearDown]
    public void DisposeMachines()
    {
        _longMode?.Dispose();
        _protectedMode?.Dispose();
    }

    [Test]
    public void MatchesHostInLongMode([ValueSource(nameof(LongModeCases))] OracleCase form, [Values(7, 20240611)] int seed) =>
        Check(_longMode!, form, seed);

    [Test]
    public void MatchesHostInProtectedMode([ValueSource(nameof(ProtectedModeCases))] OracleCase form, [Values(7, 20240611)] int seed) =>
        Check(_protectedMode!, form, seed);

    private static void Check(CpuTestMachine machine, OracleCase form, int seed)
    {
        Assume.That(NativeCode.IsSupported, Is.True, "the host oracle needs x86-64 Linux");
        var emulated = new Assembler(machine.Bitness);
        form.Emit(emulated);
        emulated.hlt();
        machine.Load(emulated);
        using var native = new NativeCode(Stub(form));
        var registerMask = machine.Bitness == 64 ? ulong.MaxValue : uint.MaxValue;
        var (a, c, d) = machine.Bitness == 64 ? (Register.RAX, Register.RCX, Register.RDX) : (Register.EAX, Register.ECX, Register.EDX);
        var random = new Random(seed);
        var state = stackalloc ulong[4];
        var failures = new List<string>();
        var compared = 0;
        for (var n = 0; n < Iterations; n++)
        {
            var input = form.Generate(random);
            if (!form.IsValid(input))
            {
                continue;
            }

            state[0] = input.Rax;
            state[1] = input.Rcx;
            state[2] = input.Rdx;
            state[3] = input.Rflags;
            native.Call(state);
            var expected = new OracleOperands(state[0], state[1], state[2], state[3]);
            machine.RunFromStart(input.Rflags, (a, input.Rax & registerMask), (c, input.Rcx & registerMask), (d, input.Rdx & registerMask));
            var actual = new OracleOperands(machine[a], machine[c], machine[d], machine.Rflags);
            var defined = form.DefinedFlags(input);
            var registersAgree = form.ResultUndefined(input)
                || ((expected.Rax ^ actual.Rax) & registerMask) == 0 && ((expected.Rcx ^ actual.Rcx) & registerMask) == 0 && ((expected.Rdx ^ actual.Rdx) & registerMask) == 0;
            var flagsAgree = ((expected.Rflags ^ actual.Rflags) & defined) == 0;
            compared++;
            if (!registersAgree || !flagsAgree)
            {
                failures.Add($"in {input}: host {expected with { Rflags = expected.Rflags & defined }}, interpreter {actual with { Rflags = actual.Rflags & defined }} (defined flags 0x{defined:x})");
            }
        }

        Assert.That(compared, Is.GreaterThan(0), "no valid operands were generated");
        Assert.That(failures, Is.Empty, () => $"{form} in {machine.Bitness}-bit mode:{Environment.NewLine}{string.Join(Environment.NewLine, failures.Take(6))}");
    }

    private static Assembler Stub(OracleCase form)
    {
        var a = new Assembler(64);
        a.mov(r8, rdi);
        a.mov(rax, __qword_ptr[r8]);
        a.mov(rcx, __qword_ptr[r8 + 8]);
        a.mov(rdx, __qword_ptr[r8 + 16]);
        a.push(__qword_ptr[r8 + 24]);
        a.popfq();
        form.Emit(a);
        a.pushfq();
        a.pop(r9);
        a.mov(__qword_ptr[r8], rax);
        a.mov(__qword_ptr[r8 + 8], rcx);
        a.mov(__qword_ptr[r8 + 16], rdx);
        a.mov(__qword_ptr[r8 + 24], r9);
        a.ret();
        return a;
    }
}
