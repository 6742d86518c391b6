using System.Buffers.Binary;
using System.Collections.Concurrent;
using Hypervisor.GuestMmu.Addresses;
using Hypervisor.GuestMmu.Mmu;
using Hypervisor.GuestMmu.Tlb;
using Hypervisor.GuestMmu.Walker;
using Hypervisor.HostMm;
using Hypervisor.HostMm.Frames;
using Hypervisor.HostMm.Vmas;
using Hypervisor.Notifier;
using static Hypervisor.GuestMmu.Tests.Mmu.TestVm;

namespace Hypervisor.GuestMmu.Tests.Mmu;

/// <summary>
/// vCPU threads fault and read guest memory through their own TLBs while another thread munmaps, remaps,
/// mprotects, MADV_DONTNEEDs, mremaps and rewrites the backing host memory. Every page holds a stamp naming
/// itself; a vCPU must never read a stamp of another page or a freed (poisoned) frame, and the auditor must
/// find the EPT coherent with the host after every host operation. Seeded operation streams.
/// </summary>
public class CoherenceRaceTests
{
    private const int Pages = 32;

    private const int StampBytes = 24;

    [Test]
    public void VcpusNeverSeeStaleOrFreedFramesWhileTheHostChangesMemory([Values(7, 8, 9)] int seed) => Race(seed, operations: 600, throughWalker: false);

    /// <summary>The same race with vCPUs reading and writing through the two-dimensional walker and the soft TLB.</summary>
    [Test]
    public void VcpusUsingTheWalkerNeverSeeStaleOrFreedFrames([Values(17, 18, 19)] int seed) => Race(seed, operations: 600, throughWalker: true);

    /// <summary>The same race, long: <c>dotnet test Hypervisor.sln --filter TestCategory=Stress</c>.</summary>
    [Test]
    [Explicit("long stress run; select with --filter TestCategory=Stress")]
    [Category("Stress")]
    public void StressVcpusNeverSeeStaleOrFreedFrames([Range(1, 6)] int seed, [Values] bool throughWalker) => Race(seed * 31337, operations: 20_000, throughWalker);

    private static void Race(int seed, int operations, bool throughWalker)
    {
        using var vm = new TestVm(Pages);
        for (ulong page = 0; page < Pages; page++)
        {
            Stamp(vm, page, generation: 1);
        }

        var stop = false;
        var problems = new ConcurrentQueue<string>();
        long reads = 0;
        var vcpus = Enumerable.Range(0, 2).Select(id => new Thread(() =>
        {
            if (throughWalker)
            {
                RunWalkerVcpu(vm, id, seed, () => Volatile.Read(ref stop), problems, ref reads);
            }
            else
            {
                RunVcpu(vm, id, seed, () => Volatile.Read(ref stop), problems, ref reads);
            }
        })).ToList();
        vcpus.ForEach(t => t.Start());

        try
        {
            RunHost(vm, seed, operations, problems, () => Interlocked.Read(ref reads));
        }
        finally
        {
            Volatile.Write(ref stop, true);
            vcpus.ForEach(t => t.Join());
        }

        Assert.That(problems, Is.Empty, string.Join(Environment.NewLine, problems.Take(10)));
        Assert.That(Interlocked.Read(ref reads), Is.GreaterThan(1000));
        Assert.That(vm.Mmu.Stats.Zapped, Is.GreaterThan(0));
    }

    /// <summary>
    /// Runs at least <paramref name="operations"/> host operations, and keeps going (up to a deadline) until
    /// the vCPUs have made enough accesses to overlap them: on two cores the vCPU threads may start late.
    /// </summary>
    private static void RunHost(TestVm vm, int seed, int operations, ConcurrentQueue<string> problems, Func<long> reads)
    {
        var random = new Random(seed);
        var scratch = vm.Mm.Mmap(Pages * Page, Protection.Read | Protection.Write);
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(20);
        for (var i = 0; (i < operations || (reads() < 5000 && DateTime.UtcNow < deadline)) && problems.IsEmpty; i++)
        {
            var first = (ulong)random.Next(Pages - 4);
            var count = (ulong)random.Next(1, 4);
            var at = vm.HvaOf(first);
            switch (random.Next(6))
            {
                case 0:
                    vm.Mm.Madvise(at, count * Page, Advice.DontNeed);
                    break;
                case 1:
                    vm.Mm.Mprotect(at, count * Page, Protection.Read);
                    vm.Mm.Mprotect(at, count * Page, Protection.Read | Protection.Write);
                    break;
                case 2:
                    vm.Mm.Munmap(at, count * Page);
                    vm.Mm.Mmap(count * Page, Protection.Read | Protection.Write, MmapFlags.Fixed, at);
                    break;
                case 3:
                    // Move a page away and back: both moves unmap the old range and notify. (One page: a
                    // longer range may span VMAs left by earlier remaps, which mremap refuses, as Linux does.)
                    vm.Mm.Mremap(at, Page, Page, MremapFlags.MayMove | MremapFlags.Fixed, scratch);
                    vm.Mm.Mremap(scratch, Page, Page, MremapFlags.MayMove | MremapFlags.Fixed, at);
                    scratch = vm.Mm.Mmap(Pages * Page, Protection.Read | Protection.Write, MmapFlags.Fixed, scratch);
                    break;
                default:
                    for (var page = first; page < first + count; page++)
                    {
                        Stamp(vm, page, generation: (ulong)i + 2);
                    }

                    break;
            }

            var violations = MmuAuditor.Check(vm.Mmu);
            foreach (var violation in violations)
            {
                problems.Enqueue($"after operation {i}: {violation}");
            }
        }
    }

    private static void RunVcpu(TestVm vm, int id, int seed, Func<bool> stop, ConcurrentQueue<string> problems, ref long reads)
    {
        var random = new Random(seed * 100 + id);
        var tlb = new Dictionary<ulong, Pfn>();
        var port = new VcpuTlbPort(id, tlb.Clear);
        vm.Shootdown.Add(port);
        port.EnterGuest();
        try
        {
            RunGuest(vm, id, random, tlb, port, stop, problems, ref reads);
        }
        catch (Exception e)
        {
            problems.Enqueue($"vCPU {id}: {e}");
        }

        port.ExitGuest();
    }

    private static void RunGuest(TestVm vm, int id, Random random, Dictionary<ulong, Pfn> tlb, VcpuTlbPort port, Func<bool> stop, ConcurrentQueue<string> problems, ref long reads)
    {
        var stamp = new byte[StampBytes];
        while (!stop())
        {
            port.ServiceRequests(); // instruction-block boundary
            var page = (ulong)random.Next(Pages);
            var gpa = GpaOf(page);
            if (!tlb.TryGetValue(page, out var pfn))
            {
                // "Hardware" walk of the EPT, in guest mode: a present spte fills the TLB, else a VM exit.
                var spte = vm.Mmu.Ept.Read(gpa.Gfn);
                if (!spte.IsPresent || spte.IsAccessTracked)
                {
                    port.ExitGuest();
                    var access = random.Next(4) == 0 ? EptAccess.Write : EptAccess.Read;
                    var result = vm.Mmu.HandleEptViolation(gpa, access);
                    port.EnterGuest();
                    if (result.Outcome is not (EptFaultOutcome.Installed or EptFaultOutcome.AlreadyMapped or EptFaultOutcome.HostFault))
                    {
                        problems.Enqueue($"vCPU {id}: fault at {gpa} gave {result.Outcome}");
                    }

                    continue; // re-execute: the next walk finds the spte, or faults again
                }

                pfn = spte.Pfn;
                tlb[page] = pfn;
            }

            vm.Host.Memory.FrameBytes(pfn)[..StampBytes].CopyTo(stamp);
            Interlocked.Increment(ref reads);
            if (stamp.All(b => b == HostMemory.PoisonByte))
            {
                problems.Enqueue($"vCPU {id}: page {page} read a freed frame {pfn}");
            }
            else if (TryReadStamp(stamp, out var owner) && owner != page)
            {
                problems.Enqueue($"vCPU {id}: page {page} read page {owner}'s data from {pfn}");
            }
        }
    }

    /// <summary>A vCPU with paging off (gva = gpa) reading and writing through MmuContext: walker, TLB, shootdown port.</summary>
    private static void RunWalkerVcpu(TestVm vm, int id, int seed, Func<bool> stop, ConcurrentQueue<string> problems, ref long reads)
    {
        var random = new Random(seed * 100 + id);
        using var cpu = new MmuContext(vm.Mmu, id, PagingContext.PagingOff);
        cpu.Port.EnterGuest();
        var stamp = new byte[StampBytes];
        try
        {
            while (!stop())
            {
                cpu.Port.ServiceRequests(); // instruction-block boundary
                var page = (ulong)random.Next(Pages);
                var gva = new Gva(page * Page);
                AccessResult result;
                if (random.Next(8) == 0)
                {
                    WriteStamp(stamp, page, generation: 1);
                    result = cpu.Write(gva, stamp);
                }
                else
                {
                    result = cpu.Read(gva, stamp);
                    if (result.IsOk)
                    {
                        Interlocked.Increment(ref reads);
                        if (stamp.All(b => b == HostMemory.PoisonByte))
                        {
                            problems.Enqueue($"walker vCPU {id}: page {page} read a freed frame");
                        }
                        else if (TryReadStamp(stamp, out var owner) && owner != page)
                        {
                            problems.Enqueue($"walker vCPU {id}: page {page} read page {owner}'s data");
                        }
                    }
                }

                if (!result.IsOk && result.Status != TranslationStatus.Error)
                {
                    problems.Enqueue($"walker vCPU {id}: access to page {page} gave {result.Status}");
                }
            }
        }
        catch (Exception e)
        {
            problems.Enqueue($"walker vCPU {id}: {e}");
        }
        finally
        {
            cpu.Port.ExitGuest();
        }
    }

    private static void Stamp(TestVm vm, ulong page, ulong generation)
    {
        var stamp = new byte[StampBytes];
        WriteStamp(stamp, page, generation);
        vm.Mm.Write(vm.HvaOf(page), stamp);
    }

    /// <summary>A stamp: owner page, generation (never 0), and a seal over both.</summary>
    private static void WriteStamp(Span<byte> stamp, ulong page, ulong generation)
    {
        BinaryPrimitives.WriteUInt64LittleEndian(stamp, page);
        BinaryPrimitives.WriteUInt64LittleEndian(stamp[8..], generation);
        BinaryPrimitives.WriteUInt64LittleEndian(stamp[16..], Seal(page, generation));
    }

    /// <summary>
    /// The owner of a whole stamp; false for a never-stamped (zero) frame and for a torn read, which a reader
    /// copying the bytes while another vCPU or the host writes them can see legitimately (the old zero owner
    /// with the new generation, say). Only a sealed stamp can accuse a mapping.
    /// </summary>
    private static bool TryReadStamp(ReadOnlySpan<byte> stamp, out ulong owner)
    {
        owner = BinaryPrimitives.ReadUInt64LittleEndian(stamp);
        var generation = BinaryPrimitives.ReadUInt64LittleEndian(stamp[8..]);
        return generation != 0 && BinaryPrimitives.ReadUInt64LittleEndian(stamp[16..]) == Seal(owner, generation);
    }

    private static ulong Seal(ulong page, ulong generation) => ~((page * 0x9E37_79B9_7F4A_7C15UL) ^ generation);
}
