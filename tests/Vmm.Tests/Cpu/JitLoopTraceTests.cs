using Hypervisor.Vmm.Cpu;
using Hypervisor.Vmm.Devices;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Vmm.Tests.Cpu;

/// <summary>
/// Two-block loops compiled as one (<see cref="CodeBlock.LoopTrace"/>): a loop body split by a conditional branch — block
/// A ends in a branch to B, B's last branch goes back to A — runs inside one compiled method. The retired count, state
/// and faults stay the interpreter's wherever a budget, a fault, a store into the loop's own code, a stop request or a
/// shootdown cuts it.
/// </summary>
public sealed class JitLoopTraceTests
{
    // Compiled at its third run: A has been linked to B by then (a trace is made from A's current link).
    private const int Threshold = 3;

    private static readonly Register[] Compared =
    [
        Register.RAX, Register.RBX, Register.RCX, Register.RDX, Register.RSI, Register.RDI, Register.R12, Register.R13, Register.R14,
    ];

    [Test]
    public void ATwoBlockLoopRunsAsOneTraceAndKeepsTheInterpretersStateUnderBudgetsOfEverySize([Values(1, 2, 3)] int seed)
    {
        // A: ADD, MOV, AND, CMP, JNE to B (taken 7 passes in 8); C (the fall-through, every 8th pass): INC, IMUL, then
        // B's instructions, decoded as one block; B: a store and a load through the TLB, XOR, SHR, ADD, DEC, JNZ to A.
        // Budgets of 1 to 14 instructions cut the trace inside A, between A and B, inside B and at its back edge.
        static void Program(Assembler a)
        {
            var loop = a.CreateLabel();
            var second = a.CreateLabel();
            a.mov(r13, 600);
            a.mov(r12, (long)CpuTestMachine.DataAddress);
            a.Label(ref loop);
            a.add(rax, rbx);
            a.mov(rcx, rax);
            a.and(ecx, 7);
            a.cmp(ecx, 3);
            a.jne(second);
            a.inc(rdi);
            a.imul(rsi, rdi, 3);
            a.Label(ref second);
            a.mov(__qword_ptr[r12 + rcx * 8], rax);
            a.add(rdx, __qword_ptr[r12 + rcx * 8]);
            a.xor(rbx, rax);
            a.shr(rbx, 1);
            a.add(r14, rcx);
            a.dec(r13);
            a.jnz(loop);
            a.hlt();
        }

        using var interpreted = Start(ExecutionTier.Interp, Program);
        using var compiled = Start(ExecutionTier.Jit, Program);
        var random = new Random(seed);
        for (var run = 1; ; run++)
        {
            var budget = random.Next(1, 15);
            var expected = interpreted.Run(budget);
            var actual = compiled.Run(budget);
            Assert.That(actual.Reason, Is.EqualTo(expected.Reason), $"run {run} (budget {budget}): exit");
            TierStateAssert.Same(interpreted, compiled, Compared, $"after run {run} (budget {budget})");
            if (expected.Reason == CpuExitReason.Halted)
            {
                break;
            }
        }

        Assert.Multiple(() =>
        {
            Assert.That(compiled.ReadBytes(CpuTestMachine.DataAddress, 64), Is.EqualTo(interpreted.ReadBytes(CpuTestMachine.DataAddress, 64)));
            Assert.That(compiled.Cpu.JitStats.LoopTraces, Is.EqualTo(1), "A was compiled with B as one loop");
            Assert.That(interpreted.Cpu.JitStats.LoopTraces, Is.Zero);
        });
    }

    [Test]
    public void AFaultInTheSecondBlockPushesItsRipAndRetiresExactlyTheInstructionsBeforeIt()
    {
        // Pass 42 of the loop (one that goes from A to B: RAX is odd after its ADD) points R12 at a non-canonical address (CMOVE, interpreted inside the trace) and B's load
        // through it raises #GP; the handler halts. Both tiers push the same RIP and retire the same count.
        Label faulting = default, handler = default;
        void Program(Assembler a)
        {
            var loop = a.CreateLabel();
            var second = a.CreateLabel();
            faulting = a.CreateLabel();
            handler = a.CreateLabel();
            a.mov(r13, 100);
            a.mov(r12, (long)CpuTestMachine.DataAddress);
            a.mov(r9, unchecked((long)0x8000_0000_0000_0000UL));
            a.Label(ref loop);
            a.add(rax, 3);
            a.test(eax, 1);
            a.jnz(second);
            a.add(rsi, 1);
            a.Label(ref second);
            a.cmp(r13, 59);
            a.cmove(r12, r9);
            a.add(rdx, rax);
            a.Label(ref faulting);
            a.add(rbx, __qword_ptr[r12]);
            a.dec(r13);
            a.jnz(loop);
            a.hlt();
            a.Label(ref handler);
            a.mov(edi, 0x0D);
            a.hlt();
        }

        using var interpreted = Start(ExecutionTier.Interp, Program);
        using var compiled = Start(ExecutionTier.Jit, Program);
        foreach (var m in new[] { interpreted, compiled })
        {
            m.SetGate(13, m.AddressOf(handler));
            m.RunToHalt();
        }

        Assert.Multiple(() =>
        {
            Assert.That(compiled[Register.EDI], Is.EqualTo(0x0D), "the load through the non-canonical pointer raised #GP");
            Assert.That(compiled.StackSlot(1), Is.EqualTo(compiled.AddressOf(faulting)), "the pushed RIP is the faulting ADD's");
            Assert.That(compiled.StackSlot(1), Is.EqualTo(interpreted.StackSlot(1)));
            Assert.That(compiled[Register.R13], Is.EqualTo(59), "the fault came on the 42nd pass");
            Assert.That(compiled.Cpu.JitStats.LoopTraces, Is.EqualTo(1));
        });
        TierStateAssert.Same(interpreted, compiled, Compared, "after the handler");
    }

    [Test]
    public void AStoreIntoTheSecondBlocksCodeIsSeenOnTheNextPass()
    {
        // A stores the pass number into the immediate of B's MOV (same code page) every fourth pass; B adds that
        // immediate to RDX. The store leaves the compiled trace and the next pass runs the new code.
        Label immediate = default;
        void Program(Assembler a)
        {
            var loop = a.CreateLabel();
            var second = a.CreateLabel();
            var store = a.CreateLabel();
            a.mov(r13, 200);
            a.Label(ref loop);
            a.inc(ecx);
            a.test(ecx, 3);
            a.jnz(second);
            a.Label(ref store);
            a.mov(__dword_ptr[rsi], ecx);
            a.Label(ref second);
            immediate = second;
            a.mov(ebx, 1);
            a.add(rdx, rbx);
            a.dec(r13);
            a.jnz(loop);
            a.hlt();
        }

        var expected = 0UL;
        var current = 1UL;
        for (var pass = 1UL; pass <= 200; pass++)
        {
            current = pass % 4 == 0 ? pass : current;
            expected += current;
        }

        using var interpreted = Start(ExecutionTier.Interp, Program);
        using var compiled = Start(ExecutionTier.Jit, Program);
        foreach (var m in new[] { interpreted, compiled })
        {
            m[Register.RSI] = m.AddressOf(immediate) + 1;
            m.RunToHalt();
        }

        Assert.Multiple(() =>
        {
            Assert.That(interpreted[Register.RDX], Is.EqualTo(expected), "the interpreter ran every new immediate");
            Assert.That(compiled[Register.RDX], Is.EqualTo(expected), "the JIT tier ran every new immediate");
            Assert.That(compiled.Cpu.Stats.Instructions, Is.EqualTo(interpreted.Cpu.Stats.Instructions));
        });
    }

    [Test]
    public void AStopRequestAndAShootdownReachAVcpuRunningATwoBlockLoop()
    {
        // An endless loop of two blocks, A ending in a conditional branch to B: it runs as one trace; no event is ever due.
        Label loop = default;
        void Program(Assembler a)
        {
            loop = a.CreateLabel();
            var second = a.CreateLabel();
            a.Label(ref loop);
            a.add(rax, 1);
            a.test(eax, 0x7F);
            a.jnz(second);
            a.add(rcx, 1);
            a.Label(ref second);
            a.add(rbx, rax);
            a.jmp(loop);
        }

        using var m = Start(ExecutionTier.Jit, Program);
        m[Register.RAX] = 0;
        m[Register.RBX] = 0;
        var exit = default(CpuExit);
        var vcpu = new Thread(() => exit = m.Run(long.MaxValue / 2)) { IsBackground = true };
        vcpu.Start();
        var limit = TimeSpan.FromSeconds(10);
        Assert.That(SpinWait.SpinUntil(() => m.Cpu.JitStats.ChainedBlocks > 10_000, limit), Is.True, "the loop runs as a trace");

        var shootdown = Task.Run(() => m.Mmu.Shootdown.FlushAll());
        Assert.That(shootdown.Wait(limit), Is.True, "the shootdown was served by the vCPU running the trace");

        m.Stop.Post(new VmStop(VmStopReason.Shutdown, 1, "test"));
        Assert.That(vcpu.Join(limit), Is.True, "the stop request ended the run");
        Assert.Multiple(() =>
        {
            Assert.That(exit.Reason, Is.EqualTo(CpuExitReason.StopRequested));
            Assert.That(m.Cpu.JitStats.LoopTraces, Is.EqualTo(1));
            // Stopped at a block boundary: at the loop's start every ADD to RAX has had its ADD to RBX, elsewhere the last
            // one has not yet.
            var passes = m.Cpu.Rip == m.AddressOf(loop) ? m[Register.RAX] : m[Register.RAX] - 1;
            Assert.That(m[Register.RBX], Is.EqualTo(passes * (passes + 1) / 2), "exact at the stop: one ADD to RBX per completed pass");
        });
    }

    private static CpuTestMachine Start(ExecutionTier tier, Action<Assembler> program)
    {
        var machine = CpuTestMachine.With(64, program);
        machine.Cpu.Tier = tier;
        machine.Cpu.JitThreshold = Threshold;
        machine[Register.RAX] = 0x1234_5678_9ABC_DEF1;
        machine[Register.RBX] = 0x0FED_CBA9_8765_4321;
        return machine;
    }
}
