using System.Buffers.Binary;
using Hypervisor.GuestMmu.Mmu;
using Hypervisor.HostMm;
using Hypervisor.HostMm.Vmas;
using Hypervisor.Notifier;
using Hypervisor.Vmm.Cpu;
using Hypervisor.Vmm.Devices;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;
using HostProcess = Hypervisor.HostMm.Mm;

namespace Hypervisor.Vmm.Tests.Cpu;

/// <summary>
/// Several interpreter vCPUs, each on its own thread, read a guest page while the host changes the memory under them
/// (MADV_DONTNEED, mprotect read-only and back, fork with copy-on-write, munmap and a fixed mmap of the page), as
/// issue 14's race asks. The host publishes a generation only after the change and a write of that generation into
/// the page have returned; every vCPU loops reading the publication and then the page, and counts a page that does
/// not hold the published generation: a translation that survived its shootdown. A vCPU that meets the unmapped window
/// exits with the memory fault (KVM's -EFAULT) and is resumed, as a VMM would once the memory is back. The host
/// operations follow a seed; the MMU and host auditors run during the race and after it. The publication is a
/// sequence lock (odd while a change is in progress), so a read between the change and the page's new value does not
/// count: only a read the host's completed change should have made impossible does.
/// </summary>
public sealed class MultiVcpuHostRaceTests
{
    private const ulong Page = 0x1000;
    private const ulong Published = CpuTestMachine.DataAddress + Page;
    private const ulong Stale = CpuTestMachine.DataAddress + (2 * Page);
    private const ulong Reads = CpuTestMachine.DataAddress + (3 * Page);
    private const ulong Watched = CpuTestMachine.DataAddress;
    private static readonly TimeSpan ProgressLimit = TimeSpan.FromSeconds(20);

    [TestCase(2, 11, 200)]
    [TestCase(3, 29, 200)]
    public void NoVcpuReadsAFrameTheHostReplacedAfterTheChangeReturned(int vcpus, int seed, int generations)
    {
        using var m = CpuTestMachine.With(64, EmitReader);
        var cpus = new List<X86Cpu> { m.Cpu };
        for (var id = 1; id < vcpus; id++)
        {
            cpus.Add(m.AddVcpu(id));
        }

        for (var id = 0; id < vcpus; id++)
        {
            cpus[id].SetRegister(Register.RSI, (ulong)id * 8);
        }

        var process = m.Process;
        var watched = new Hva(m.RamBase.Value + Watched);
        var published = new Hva(m.RamBase.Value + Published);
        var memoryFaultExits = new long[vcpus];
        var unexpected = new string?[vcpus];
        var threads = cpus.Select((cpu, id) => new Thread(() => RunVcpu(cpu, id, memoryFaultExits, unexpected)) { IsBackground = true }).ToArray();
        foreach (var thread in threads)
        {
            thread.Start();
        }

        var random = new Random(seed);
        var children = new List<HostProcess>();
        var operations = new int[4];
        var audits = new List<string>();
        string? stalled = null;
        for (var generation = 1UL; generation <= (ulong)generations; generation++)
        {
            WriteWord(process, published, (2 * generation) - 1); // odd: a change is in progress
            var operation = random.Next(4);
            operations[operation]++;
            switch (operation)
            {
                case 0:
                    process.Madvise(watched, Page, Advice.DontNeed);
                    break;
                case 1:
                    process.Mprotect(watched, Page, Protection.Read);
                    process.Mprotect(watched, Page, Protection.Read | Protection.Write);
                    break;
                case 2:
                    children.Add(process.Fork()); // the write below copies the page in the parent
                    break;
                default:
                    process.Munmap(watched, Page);
                    process.Mmap(Page, Protection.Read | Protection.Write, MmapFlags.Fixed, watched);
                    break;
            }

            WriteWord(process, watched, generation);
            WriteWord(process, published, 2 * generation);
            if (!WaitUntilEveryVcpuHasRead(process, new Hva(m.RamBase.Value + Reads), vcpus, unexpected))
            {
                stalled = $"generation {generation}: a vCPU completed no check for {ProgressLimit.TotalSeconds:N0} s (a stale publication or page)";
                break;
            }
            if (generation % 50 == 0)
            {
                audits.AddRange(MmuAuditor.Check(m.Mmu));
            }
        }

        WriteWord(process, published, ulong.MaxValue);
        var joined = threads.All(thread => thread.Join(ProgressLimit));
        if (!joined)
        {
            // A vCPU that never sees the stop word is stopped between blocks, so the machine can be torn down.
            m.Stop.Post(new VmStop(VmStopReason.Shutdown, 1, "test"));
            Assert.That(threads.All(thread => thread.Join(ProgressLimit)), Is.True, "a stop request ends every vCPU");
        }

        foreach (var child in children)
        {
            child.Exit();
        }

        Assert.Multiple(() =>
        {
            Assert.That(stalled, Is.Null);
            Assert.That(joined, Is.True, "every vCPU saw the stop word and halted");
            Assert.That(unexpected, Is.All.Null, "every vCPU ran to its HLT");
            for (var id = 0; id < vcpus; id++)
            {
                Assert.That(m.ReadUInt64(Stale + ((ulong)id * 8)), Is.Zero, $"vCPU {id} read a generation older than the one published");
                Assert.That(m.ReadUInt64(Reads + ((ulong)id * 8)), Is.Positive, $"vCPU {id} ran its loop");
            }

            Assert.That(operations, Is.All.Positive, "the seed drove every kind of host change");
            Assert.That(audits, Is.Empty, "MMU audits during the race");
            Assert.That(MmuAuditor.Check(m.Mmu), Is.Empty, "MMU audit after the race");
            Assert.That(HostMmAuditor.Check(m.Host), Is.Empty, "host audit after the race");
            Assert.That(m.Mmu.Shootdown.Flushes, Is.Positive);
        });
        TestContext.Out.WriteLine($"operations {string.Join('/', operations)}; memory-fault exits {string.Join('/', memoryFaultExits)}; "
            + $"shootdowns {m.Mmu.Shootdown.Flushes}, waited {m.Mmu.Shootdown.Waits}, mean wait {(m.Mmu.Shootdown.Waits == 0 ? 0 : m.Mmu.Shootdown.WaitTime.TotalMicroseconds / m.Mmu.Shootdown.Waits):F1} us");
    }

    /// <summary>
    /// RSI = the vCPU's slot offset. A sequence lock: read the publication word (all ones: stop; odd: a change is in
    /// progress, read again), read the watched page, read the publication again (changed: read again); the page must
    /// hold exactly half the publication, else the vCPU's stale slot counts it. Every completed check counts a read.
    /// </summary>
    private static void EmitReader(Assembler a)
    {
        var loop = a.CreateLabel();
        var fresh = a.CreateLabel();
        var done = a.CreateLabel();
        a.mov(r8, Published);
        a.mov(r9, Watched);
        a.mov(r10, Stale);
        a.add(r10, rsi);
        a.mov(r11, Reads);
        a.add(r11, rsi);
        a.Label(ref loop);
        a.mov(rax, __qword_ptr[r8]);
        a.cmp(rax, -1);
        a.je(done);
        a.test(al, 1);
        a.jnz(loop);
        a.mov(rbx, __qword_ptr[r9]);
        a.mov(rcx, __qword_ptr[r8]);
        a.cmp(rcx, rax);
        a.jne(loop);
        a.shr(rax, 1);
        a.cmp(rbx, rax);
        a.je(fresh);
        a.inc(__qword_ptr[r10]);
        a.Label(ref fresh);
        a.inc(__qword_ptr[r11]);
        a.jmp(loop);
        a.Label(ref done);
        a.hlt();
    }

    private static void RunVcpu(X86Cpu cpu, int id, long[] memoryFaultExits, string?[] unexpected)
    {
        while (true)
        {
            var exit = cpu.Run(100_000);
            switch (exit.Reason)
            {
                case CpuExitReason.Halted:
                    return;
                case CpuExitReason.BudgetExhausted:
                    continue;
                case CpuExitReason.MemoryFault:
                case CpuExitReason.InternalError when exit.Detail.Contains("failed", StringComparison.Ordinal):
                    // The page is unmapped for a moment (the host refuses the access: a memory-fault exit, as KVM's
                    // KVM_EXIT_MEMORY_FAULT): the access restarts once the host maps it again.
                    memoryFaultExits[id]++;
                    Thread.Yield();
                    continue;
                default:
                    unexpected[id] = $"{exit.Reason}: {exit.Detail}";
                    return;
            }
        }
    }

    /// <summary>Paces the host: the next change waits until every vCPU has been through its loop again since this one.</summary>
    /// <returns>False when a vCPU made no progress within <see cref="ProgressLimit"/>.</returns>
    private static bool WaitUntilEveryVcpuHasRead(HostProcess process, Hva reads, int vcpus, string?[] unexpected)
    {
        var deadline = DateTime.UtcNow + ProgressLimit;
        Span<ulong> before = stackalloc ulong[vcpus];
        for (var id = 0; id < vcpus; id++)
        {
            before[id] = ReadWord(process, reads + ((ulong)id * 8));
        }

        for (var id = 0; id < vcpus; id++)
        {
            var spinner = default(SpinWait);
            while (ReadWord(process, reads + ((ulong)id * 8)) == before[id] && Volatile.Read(ref unexpected[id]) is null)
            {
                if (DateTime.UtcNow > deadline)
                {
                    return false;
                }

                spinner.SpinOnce();
            }
        }

        return true;
    }

    private static ulong ReadWord(HostProcess process, Hva address)
    {
        Span<byte> bytes = stackalloc byte[8];
        process.Read(address, bytes);
        return BinaryPrimitives.ReadUInt64LittleEndian(bytes);
    }

    private static void WriteWord(HostProcess process, Hva address, ulong value)
    {
        Span<byte> bytes = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, value);
        process.Write(address, bytes);
    }
}
