using System.Buffers.Binary;
using System.Collections.Concurrent;
using Hypervisor.GuestMmu.Addresses;
using Hypervisor.GuestMmu.Backing;
using Hypervisor.GuestMmu.Memslots;
using Hypervisor.GuestMmu.Mmu;
using Hypervisor.GuestMmu.Tlb;
using Hypervisor.GuestMmu.Walker;
using Hypervisor.HostMm;
using Hypervisor.HostMm.Frames;
using Hypervisor.HostMm.Reclaim;
using Hypervisor.HostMm.Swap;
using Hypervisor.HostMm.Vmas;

namespace Hypervisor.GuestMmu.Tests.Mmu;

/// <summary>
/// vCPU threads write and read their own guest pages through their soft TLBs, the two-dimensional walker and the EPT
/// fault path, in a process whose cgroup limit is a third of the guest's RAM, while the host reclaims (its background
/// step), pages out, makes pages cold, write-protects and unprotects, and forks and reaps snapshots. Every write a vCPU
/// made must be what it reads back — through any number of swap-outs and swap-ins — no read may see another page's data
/// or a freed frame, the MMU auditor must be clean after every host step, and the host auditor at the end.
/// </summary>
public class SwapCoherenceRaceTests
{
    private const ulong Page = 4096;
    private const int PagesPerVcpu = 48;
    private const int Vcpus = 2;

    [Test]
    public void Guest_writes_survive_swap_under_running_vcpus([Values(21, 22)] int seed, [Values] LruPolicy policy) => Race(seed, hostSteps: 300, policy);

    /// <summary>The same race with frames marked dirty when mapped writable and never on zap or age (<see cref="DirtyTrackingPolicy.OnMap"/>).</summary>
    [Test]
    public void Guest_writes_survive_swap_with_map_time_dirty_marking([Values(23)] int seed) =>
        Race(seed, hostSteps: 300, LruPolicy.Classic, DirtyTrackingPolicy.OnMap);

    /// <summary>The same race, long: <c>dotnet test Hypervisor.sln --filter TestCategory=Stress</c>.</summary>
    [Test]
    [Explicit("long stress run; select with --filter TestCategory=Stress")]
    [Category("Stress")]
    public void StressGuestWritesSurviveSwap([Range(1, 4)] int seed, [Values] LruPolicy policy) => Race(seed * 4241, hostSteps: 8_000, policy);

    private static void Race(int seed, int hostSteps, LruPolicy policy, DirtyTrackingPolicy dirtyTracking = DirtyTrackingPolicy.OnZap)
    {
        using var host = new Host(new HostOptions
        {
            Memory = new HostMemoryOptions { TotalBytes = 64UL << 20, AuditFreedFrames = true },
            Swap = new SwapOptions { Kind = SwapDeviceKind.Zram, SizeBytes = 16UL << 20 },
            Reclaim = new ReclaimOptions { Policy = policy },
        });
        const int pages = Vcpus * PagesPerVcpu;
        var mm = host.CreateMm(0, host.Reclaim.CreateCgroup("guest", pages / 3));
        var ram = mm.Mmap(pages * Page, Protection.Read | Protection.Write);
        var shootdown = new TlbShootdown();
        using var mmu = new TdpMmu(shootdown, new TdpMmuOptions { DirtyTracking = dirtyTracking });
        mmu.SetMemoryRegion(0, MemslotFlags.None, new Gpa(0), pages * Page, ram, new HostProcessBacking(mm));

        var stop = 0;
        long checkedReads = 0;
        var problems = new ConcurrentQueue<string>();
        var vcpus = Enumerable.Range(0, Vcpus).Select(id => new Thread(() =>
            RunVcpu(mmu, id, seed, () => Volatile.Read(ref stop) != 0, problems, ref checkedReads))).ToList();
        vcpus.ForEach(t => t.Start());
        try
        {
            var random = new Random(seed);
            var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
            for (var step = 0; (step < hostSteps || Interlocked.Read(ref checkedReads) < 2_000) && DateTime.UtcNow < deadline && problems.IsEmpty; step++)
            {
                var first = (ulong)random.Next(pages - 8);
                var at = ram + (first * Page);
                switch (random.Next(5))
                {
                    case 0:
                        mm.Madvise(at, 8 * Page, Advice.PageOut);
                        break;
                    case 1:
                        mm.Madvise(at, 8 * Page, Advice.Cold);
                        break;
                    case 2:
                        mm.Mprotect(at, 8 * Page, Protection.Read);
                        mm.Mprotect(at, 8 * Page, Protection.Read | Protection.Write);
                        break;
                    case 3:
                        mm.Fork().Exit();
                        break;
                    default:
                        host.Reclaim.Step(32);
                        break;
                }

                foreach (var violation in MmuAuditor.Check(mmu))
                {
                    problems.Enqueue($"after host step {step}: {violation}");
                }
            }
        }
        finally
        {
            Volatile.Write(ref stop, 1);
            vcpus.ForEach(t => t.Join());
        }

        Assert.That(problems, Is.Empty, string.Join(Environment.NewLine, problems.Take(10)));
        Assert.That(Interlocked.Read(ref checkedReads), Is.GreaterThanOrEqualTo(2_000));
        Assert.That(host.Reclaim.Stats.Pswpout, Is.GreaterThan(0));
        Assert.That(host.Reclaim.Stats.Pswpin + host.Reclaim.Stats.SwapCacheHits, Is.GreaterThan(0));
        var violations = HostMmAuditor.Check(host);
        Assert.That(violations, Is.Empty, string.Join(Environment.NewLine, violations.Take(10)));
        mmu.Dispose();
        mm.Exit();
    }

    /// <summary>
    /// A vCPU with paging off over its own pages: writes (page, version, seal) and checks that a read returns the last
    /// version it wrote. A write refused while the host has the page read-only is retried later (no version is counted).
    /// </summary>
    private static void RunVcpu(TdpMmu mmu, int id, int seed, Func<bool> stop, ConcurrentQueue<string> problems, ref long checkedReads)
    {
        var random = new Random((seed * 100) + id);
        var versions = new ulong[PagesPerVcpu];
        var stamp = new byte[24];
        using var cpu = new MmuContext(mmu, id, PagingContext.PagingOff);
        cpu.Port.EnterGuest();
        try
        {
            while (!stop() && problems.IsEmpty)
            {
                cpu.Port.ServiceRequests(); // instruction-block boundary
                var index = random.Next(PagesPerVcpu);
                var page = (ulong)((id * PagesPerVcpu) + index);
                var gva = new Gva(page * Page);
                if (random.Next(3) == 0)
                {
                    var version = versions[index] + 1;
                    BinaryPrimitives.WriteUInt64LittleEndian(stamp, page);
                    BinaryPrimitives.WriteUInt64LittleEndian(stamp.AsSpan(8), version);
                    BinaryPrimitives.WriteUInt64LittleEndian(stamp.AsSpan(16), Seal(page, version));
                    if (cpu.Write(gva, stamp).IsOk)
                    {
                        versions[index] = version;
                    }

                    continue;
                }

                var result = cpu.Read(gva, stamp);
                if (!result.IsOk)
                {
                    problems.Enqueue($"vCPU {id}: read of page {page} gave {result.Status} {result.Fault} ({cpu.Walker.LastFailureDetail})");
                    continue;
                }

                Interlocked.Increment(ref checkedReads);
                var owner = BinaryPrimitives.ReadUInt64LittleEndian(stamp);
                var seen = BinaryPrimitives.ReadUInt64LittleEndian(stamp.AsSpan(8));
                var seal = BinaryPrimitives.ReadUInt64LittleEndian(stamp.AsSpan(16));
                var expected = versions[index];
                if (stamp.All(b => b == HostMemory.PoisonByte))
                {
                    problems.Enqueue($"vCPU {id}: page {page} read a freed frame");
                }
                else if (expected == 0 ? (owner | seen | seal) != 0 : owner != page || seen != expected || seal != Seal(page, expected))
                {
                    problems.Enqueue($"vCPU {id}: page {page} read (owner {owner}, version {seen}), expected version {expected}: a write was lost or another page's data returned");
                }
            }
        }
        catch (Exception e)
        {
            problems.Enqueue($"vCPU {id}: {e}");
        }
        finally
        {
            cpu.Port.ExitGuest();
        }
    }

    private static ulong Seal(ulong page, ulong version) => ~((page * 0x9E37_79B9_7F4A_7C15UL) ^ version);
}
