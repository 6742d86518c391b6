using Hypervisor.Vmm.Cpu;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Vmm.Tests.Cpu;

/// <summary>
/// LOCK-prefixed read-modify-writes and CMPXCHG are atomic across vCPUs running on their own threads: every vCPU adds
/// to shared counters of every width with LOCK INC, ADD, XADD, BTS-free increments through a CMPXCHG loop, and a
/// CMPXCHG spinlock and a byte XCHG spinlock each guarding a plain increment; no update is lost.
/// </summary>
public sealed class LockedOperationRaceTests
{
    private const int Rounds = 20_000;
    private const ulong Counters = CpuTestMachine.DataAddress;

    [TestCase(2)]
    [TestCase(4)]
    public void NoLockedUpdateIsLostBetweenVcpus(int vcpus)
    {
        using var m = CpuTestMachine.With(64, EmitWorker);
        var cpus = new List<X86Cpu> { m.Cpu };
        for (var id = 1; id < vcpus; id++)
        {
            cpus.Add(m.AddVcpu(id));
        }

        var exits = new CpuExit[vcpus];
        var threads = cpus.Select((cpu, id) => new Thread(() => exits[id] = cpu.Run(50_000_000))).ToArray();
        foreach (var thread in threads)
        {
            thread.Start();
        }

        foreach (var thread in threads)
        {
            Assert.That(thread.Join(TimeSpan.FromSeconds(120)), Is.True);
        }

        var total = (ulong)(vcpus * Rounds);
        Assert.Multiple(() =>
        {
            Assert.That(exits.Select(e => e.Reason), Is.All.EqualTo(CpuExitReason.Halted), string.Join("; ", exits.Select(e => e.Detail)));
            Assert.That(m.ReadUInt64(Counters), Is.EqualTo(total), "LOCK INC qword");
            Assert.That(m.ReadUInt32(Counters + 8), Is.EqualTo((uint)(3 * total)), "LOCK ADD dword, 3");
            Assert.That(m.ReadUInt16(Counters + 16), Is.EqualTo((ushort)total), "LOCK XADD word");
            Assert.That(m.ReadByte(Counters + 24), Is.EqualTo((byte)total), "LOCK INC byte");
            Assert.That(m.ReadUInt64(Counters + 32), Is.EqualTo(total), "CMPXCHG loop");
            Assert.That(m.ReadUInt64(Counters + 48), Is.EqualTo(total), "increments under a CMPXCHG spinlock");
            Assert.That(m.ReadUInt64(Counters + 64), Is.EqualTo(total), "increments under a byte XCHG spinlock");
        });
    }

    private static void EmitWorker(Assembler a)
    {
        var loop = a.CreateLabel();
        var retry = a.CreateLabel();
        var spin = a.CreateLabel();
        var byteSpin = a.CreateLabel();
        a.mov(rdi, Counters);
        a.mov(ecx, Rounds);
        a.Label(ref loop);
        a.@lock.inc(__qword_ptr[rdi]);
        a.@lock.add(__dword_ptr[rdi + 8], 3);
        a.mov(dx, 1);
        a.@lock.xadd(__word_ptr[rdi + 16], dx);
        a.@lock.inc(__byte_ptr[rdi + 24]);

        // A compare-and-swap increment: read, add one, CMPXCHG, retry on failure.
        a.mov(rax, __qword_ptr[rdi + 32]);
        a.Label(ref retry);
        a.lea(rbx, __qword_ptr[rax + 1]);
        a.@lock.cmpxchg(__qword_ptr[rdi + 32], rbx);
        a.jne(retry);

        // A spinlock at +40 guarding a plain read-increment-write of +48.
        a.Label(ref spin);
        a.xor(eax, eax);
        a.mov(ebx, 1);
        a.@lock.cmpxchg(__dword_ptr[rdi + 40], ebx);
        a.jne(spin);
        a.mov(rax, __qword_ptr[rdi + 48]);
        a.inc(rax);
        a.mov(__qword_ptr[rdi + 48], rax);
        a.mov(__dword_ptr[rdi + 40], 0);

        // A byte spinlock at +56 taken with XCHG (locked without the prefix) guarding a plain increment of +64.
        a.Label(ref byteSpin);
        a.mov(al, 1);
        a.xchg(__byte_ptr[rdi + 56], al);
        a.test(al, al);
        a.jnz(byteSpin);
        a.inc(__qword_ptr[rdi + 64]);
        a.mov(__byte_ptr[rdi + 56], 0);

        a.dec(ecx);
        a.jnz(loop);
        a.hlt();
    }
}
