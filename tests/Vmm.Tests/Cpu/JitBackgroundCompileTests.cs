using Hypervisor.Vmm.Cpu;
using Hypervisor.Vmm.Cpu.Jit;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Vmm.Tests.Cpu;

/// <summary>
/// Background compilation (<see cref="X86Cpu.BackgroundCompilation"/>): the vCPU interprets a hot block until its
/// translation is done, and the result does not depend on when that is; a translation made from code that has since
/// been overwritten is never run. The compilations are captured (<see cref="X86Cpu.CompileQueue"/>) and run by the test
/// at chosen points, so every interleaving is reproducible; a block whose translation is not started while it runs
/// long is translated by the vCPU itself.
/// </summary>
public sealed class JitBackgroundCompileTests
{
    private static readonly Register[] Compared = [Register.RAX, Register.RBX, Register.RCX, Register.RDX, Register.R13];

    [Test]
    public void ATranslationOfCodeOverwrittenWhileItWasCompilingIsNeverRun()
    {
        // One self-loop block: MOV EBX, imm; ADD RAX, RBX; DEC R13; JNZ. The host rewrites the immediate after 10 passes,
        // while the block's translation (queued at its 5th run) is still pending; the translation then finishes.
        var loop = default(Label);
        void Program(Assembler a)
        {
            loop = a.CreateLabel();
            a.mov(r13, 300);
            a.Label(ref loop);
            a.mov(ebx, 1);
            a.add(rax, rbx);
            a.dec(r13);
            a.jnz(loop);
            a.hlt();
        }

        using var m = Start(Program, out var queued);
        Assert.That(m.Run(1 + (10 * 4)).Reason, Is.EqualTo(CpuExitReason.BudgetExhausted));
        Assert.That(queued, Has.Count.EqualTo(1), "the block was queued when it became hot");
        m.WriteCode(m.AddressOf(loop) + 1, BitConverter.GetBytes(7));
        Assert.That(queued[0].TryRun(), Is.True);
        Assert.That(queued[0].Code, Is.Not.Null, "the stale translation exists");

        // 40 passes on the rewritten block, whose own translation is then let finish.
        Assert.That(m.Run(40 * 4).Reason, Is.EqualTo(CpuExitReason.BudgetExhausted));
        Assert.That(queued, Has.Count.EqualTo(2), "the rewritten block was decoded anew and queued on its own");
        Assert.That(m.Cpu.JitStats.BlocksCompiled, Is.Zero, "the stale translation was not published");
        Assert.That(queued[1].TryRun(), Is.True);
        m.RunToHalt();

        Assert.Multiple(() =>
        {
            Assert.That(m[Register.RAX], Is.EqualTo((10 * 1) + (290 * 7)), "every pass after the rewrite added 7");
            Assert.That(m.Cpu.JitStats.BlocksCompiled, Is.EqualTo(1), "only the current block's translation was published");
            Assert.That(m.Cpu.JitStats.Instructions, Is.Positive, "the rewritten block ran compiled once its translation was done");
            Assert.That(m.Cpu.Stats.Instructions, Is.EqualTo(1 + (300 * 4) + 1));
        });
    }

    [Test]
    public void TheStateAfterEveryRunIsTheInterpretersWhenEverTheTranslationsFinish([Values(1, 2, 3, 4)] int seed)
    {
        // A chain of three blocks and a self-loop; budgets of 1 to 40 instructions, and after each run the pending
        // translations finish or not at random.
        static void Program(Assembler a)
        {
            var loop = a.CreateLabel();
            var second = a.CreateLabel();
            var inner = a.CreateLabel();
            a.mov(r13, 300);
            a.Label(ref loop);
            a.add(rax, rbx);
            a.jmp(second);
            a.Label(ref second);
            a.xor(rbx, rax);
            a.mov(ecx, 5);
            a.Label(ref inner);
            a.imul(rdx, rdx, 3);
            a.add(rdx, rcx);
            a.dec(ecx);
            a.jnz(inner);
            a.shr(rdx, 1);
            a.dec(r13);
            a.jnz(loop);
            a.hlt();
        }

        using var interpreted = CpuTestMachine.With(64, Program);
        interpreted.Cpu.Tier = ExecutionTier.Interp;
        using var compiled = Start(Program, out var queued);
        interpreted[Register.RAX] = compiled[Register.RAX] = 0x1234_5678_9ABC_DEF1;
        interpreted[Register.RBX] = compiled[Register.RBX] = 0x0FED_CBA9_8765_4321;
        var random = new Random(seed);
        var finished = 0;
        for (var run = 1; ; run++)
        {
            var budget = random.Next(1, 41);
            var expected = interpreted.Run(budget);
            var actual = compiled.Run(budget);
            Assert.That(actual.Reason, Is.EqualTo(expected.Reason), $"run {run} (budget {budget}): exit");
            AssertSameState(interpreted, compiled, $"after run {run} (budget {budget})");
            if (expected.Reason == CpuExitReason.Halted)
            {
                break;
            }

            while (finished < queued.Count && random.Next(4) == 0)
            {
                queued[finished++].TryRun();
            }
        }

        Assert.Multiple(() =>
        {
            Assert.That(queued, Has.Count.GreaterThanOrEqualTo(3), "the three hot blocks (and blocks starting where a budget cut one) were queued");
            Assert.That(queued.Select(compilation => compilation.Block).Distinct().Count(), Is.EqualTo(queued.Count), "each block once");
            Assert.That(compiled.Cpu.JitStats.Instructions, Is.Positive, "blocks ran compiled once their translations were done");
            Assert.That(compiled.Cpu.JitStats.Instructions, Is.LessThan(compiled.Cpu.Stats.Instructions), "and interpreted before");
        });
    }

    [Test]
    public void AVcpuTranslatesABlockItselfWhenItsTranslationIsNotStartedWhileItRunsLong()
    {
        // A 4-instruction self-loop run 200 000 times; its queued translation is never started by the test.
        static void Program(Assembler a)
        {
            var loop = a.CreateLabel();
            a.mov(r13, 200_000);
            a.Label(ref loop);
            a.add(rax, 3);
            a.xor(rbx, rax);
            a.dec(r13);
            a.jnz(loop);
            a.hlt();
        }

        using var m = Start(Program, out var queued);
        m.RunToHalt(2_000_000);

        Assert.Multiple(() =>
        {
            Assert.That(queued, Has.Count.EqualTo(1));
            Assert.That(queued[0].IsDone, Is.True, "the vCPU ran the translation");
            Assert.That(queued[0].TryRun(), Is.False, "and the compiler thread would not run it again");
            Assert.That(m.Cpu.JitStats.BlocksCompiled, Is.EqualTo(1));
            var interpreted = m.Cpu.Stats.Instructions - m.Cpu.JitStats.Instructions;
            Assert.That(interpreted, Is.InRange(X86Cpu.JitStealInstructions - 100, X86Cpu.JitStealInstructions + 100),
                "the loop was interpreted until it had retired the steal threshold");
            Assert.That(m[Register.RAX], Is.EqualTo(3UL * 200_000));
            Assert.That(m.Cpu.Stats.Instructions, Is.EqualTo(1 + (4 * 200_000) + 1));
        });
    }

    private static CpuTestMachine Start(Action<Assembler> program, out List<BlockCompilation> queued)
    {
        var machine = CpuTestMachine.With(64, program);
        var compilations = new List<BlockCompilation>();
        machine.Cpu.Tier = ExecutionTier.Jit;
        machine.Cpu.JitThreshold = 5;
        machine.Cpu.BackgroundCompilation = true;
        machine.Cpu.CompileQueue = compilations.Add;
        queued = compilations;
        return machine;
    }

    private static void AssertSameState(CpuTestMachine expected, CpuTestMachine actual, string when) =>
        TierStateAssert.Same(expected, actual, Compared, when);
}
