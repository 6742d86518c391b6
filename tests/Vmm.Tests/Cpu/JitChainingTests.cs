using Hypervisor.Vmm.Cpu;
using Hypervisor.Vmm.Devices;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Vmm.Tests.Cpu;

/// <summary>
/// Chaining of compiled blocks (a compiled block continuing into its compiled successor without the dispatcher): the
/// retired count and state stay exact where a budget cuts a chain, a stop request and a TLB shootdown reach a vCPU that
/// runs a loop of chained blocks, and a changed successor page is not run from a stale chain.
/// </summary>
public sealed class JitChainingTests
{
    private static readonly Register[] Compared =
    [
        Register.RAX, Register.RBX, Register.RCX, Register.RDX, Register.RSI, Register.RDI, Register.R8, Register.R13,
    ];

    [Test]
    public void AChainCutByBudgetsOfEverySizeKeepsTheInterpretersStateAfterEachRun([Values(1, 2, 3)] int seed)
    {
        // Three blocks of 2, 3 and 4 instructions in a loop, none branching to itself: every pass is chained A -> B -> C
        // -> A. Budgets of 1 to 12 instructions cut the chain at every position.
        static void Program(Assembler a)
        {
            var loop = a.CreateLabel();
            var second = a.CreateLabel();
            var third = a.CreateLabel();
            a.mov(r13, 400);
            a.Label(ref loop);
            a.add(rax, rbx);
            a.jmp(second);
            a.Label(ref second);
            a.xor(rbx, rax);
            a.imul(rcx, rbx, 7);
            a.jmp(third);
            a.Label(ref third);
            a.add(rdx, rcx);
            a.shr(rdx, 1);
            a.dec(r13);
            a.jnz(loop);
            a.hlt();
        }

        using var interpreted = Start(ExecutionTier.Interp, Program);
        using var compiled = Start(ExecutionTier.Jit, Program);
        var random = new Random(seed);
        var runs = 0;
        while (interpreted.Cpu.Stats.Instructions < 3000)
        {
            var budget = random.Next(1, 13);
            var expected = interpreted.Run(budget);
            var actual = compiled.Run(budget);
            runs++;
            Assert.That(actual.Reason, Is.EqualTo(expected.Reason), $"run {runs} (budget {budget}): exit");
            AssertSameState(interpreted, compiled, $"after run {runs} (budget {budget})");
            if (expected.Reason == CpuExitReason.Halted)
            {
                break;
            }
        }

        Assert.That(compiled.Cpu.JitStats.ChainedBlocks, Is.Positive, "budgets of up to 12 still let blocks chain");
    }

    [Test]
    public void AStopRequestAndAShootdownReachAVcpuRunningAChainedLoop()
    {
        // An endless loop of two blocks that chain into each other; no event is ever due.
        static void Program(Assembler a)
        {
            var loop = a.CreateLabel();
            var second = a.CreateLabel();
            a.Label(ref loop);
            a.add(rax, 1);
            a.jmp(second);
            a.Label(ref second);
            a.add(rbx, rax);
            a.jmp(loop);
        }

        using var m = CpuTestMachine.With(64, Program);
        m.Cpu.Tier = ExecutionTier.Jit;
        m.Cpu.JitThreshold = 1;
        var exit = default(CpuExit);
        var vcpu = new Thread(() => exit = m.Run(long.MaxValue / 2)) { IsBackground = true };
        vcpu.Start();
        var limit = TimeSpan.FromSeconds(10);
        Assert.That(SpinWait.SpinUntil(() => m.Cpu.JitStats.ChainedBlocks > 10_000, limit), Is.True,
            "the loop runs chained");

        var shootdown = Task.Run(() => m.Mmu.Shootdown.FlushAll());
        Assert.That(shootdown.Wait(limit), Is.True, "the shootdown was served by the vCPU running the chain");
        var chainedAfterShootdown = m.Cpu.JitStats.ChainedBlocks;
        Assert.That(SpinWait.SpinUntil(() => m.Cpu.JitStats.ChainedBlocks > chainedAfterShootdown + 10_000, limit),
            Is.True, "the loop chains again after the flush");

        m.Stop.Post(new VmStop(VmStopReason.Shutdown, 1, "test"));
        Assert.That(vcpu.Join(limit), Is.True, "the stop request ended the run");
        Assert.Multiple(() =>
        {
            Assert.That(exit.Reason, Is.EqualTo(CpuExitReason.StopRequested));
            Assert.That(m[Register.RAX], Is.EqualTo((m.Cpu.Stats.Instructions + 3) / 4), "one ADD to RAX per 4 instructions, exact at the stop");
        });
    }

    [Test]
    public void ASuccessorWhosePageChangedIsDecodedAgainInsteadOfRunFromTheChain()
    {
        // Block A (code page 0) stores a new immediate into block B's MOV (code page 1) every fourth pass and chains
        // into B on the others; between runs the host rewrites B's immediate too. B adds the immediate to RDX.
        Label store = default, skip = default, second = default;
        void Program(Assembler a)
        {
            var loop = a.CreateLabel();
            store = a.CreateLabel();
            skip = a.CreateLabel();
            second = a.CreateLabel();
            a.mov(r13, 200);
            a.Label(ref loop);
            a.inc(ecx);
            a.test(ecx, 3);
            a.jnz(skip);
            a.Label(ref store);
            a.mov(__dword_ptr[rsi], ecx);
            a.Label(ref skip);
            a.jmp(second);
            a.db(new byte[4096]);
            a.Label(ref second);
            a.mov(ebx, 1);
            a.add(rdx, rbx);
            a.dec(r13);
            a.jnz(loop);
            a.hlt();
        }

        static ulong Expected()
        {
            // The immediate starts at 1; pass p (ecx = p after the INC) stores p when p % 4 == 0, before B runs.
            var immediate = 1UL;
            var sum = 0UL;
            for (var pass = 1; pass <= 200; pass++)
            {
                if (pass % 4 == 0)
                {
                    immediate = (ulong)pass;
                }

                if (pass == 101)
                {
                    immediate = 1000;
                }

                sum += immediate;
            }

            return sum;
        }

        foreach (var tier in new[] { ExecutionTier.Interp, ExecutionTier.Jit })
        {
            using var m = Start(tier, Program);
            var secondAddress = m.AddressOf(second);
            Assert.That(secondAddress >> 12, Is.Not.EqualTo(m.AddressOf(store) >> 12), "B lies on another code page than A");
            m[Register.RSI] = secondAddress + 1;

            // The MOV to R13, then 100 passes of 3 + 1 + 4 instructions (3 + 2 + 4 on the 25 passes that store), then the
            // host's write of 1000, which pass 101 (ECX = 101, no store) sees.
            var first = 1 + (100 * (3 + 1 + 4)) + 25;
            Assert.That(m.Run(first).Reason, Is.EqualTo(CpuExitReason.BudgetExhausted));
            Assert.That(m[Register.R13], Is.EqualTo(100), $"{tier}: the first run ended after pass 100");
            m.WriteCode(secondAddress + 1, BitConverter.GetBytes(1000));
            m.RunToHalt();
            Assert.That(m[Register.RDX], Is.EqualTo(Expected()), $"{tier}: every pass added the immediate its B held");
            if (tier == ExecutionTier.Jit)
            {
                Assert.That(m.Cpu.JitStats.ChainedBlocks, Is.Positive, "A chained into B on the passes without a store");
            }
        }
    }

    private static CpuTestMachine Start(ExecutionTier tier, Action<Assembler> program)
    {
        var machine = CpuTestMachine.With(64, program);
        machine.Cpu.Tier = tier;
        machine.Cpu.JitThreshold = 1;
        machine[Register.RAX] = 0x1234_5678_9ABC_DEF1;
        machine[Register.RBX] = 0x0FED_CBA9_8765_4321;
        return machine;
    }

    private static void AssertSameState(CpuTestMachine expected, CpuTestMachine actual, string when) =>
        TierStateAssert.Same(expected, actual, Compared, when);
}
