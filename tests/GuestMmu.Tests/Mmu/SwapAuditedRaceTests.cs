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
using Hypervisor.Notifier;

namespace Hypervisor.GuestMmu.Tests.Mmu;

/// <summary>
/// Seeded races of two vCPUs against reclaim, MADV_PAGEOUT, MADV_COLD, munmap (and a fresh mapping at the same place)
/// and mprotect on guest RAM three times the process's cgroup limit, with the vCPUs going either through the walker
/// (<see cref="MmuContext"/>) or straight through the EPT fault path (a "hardware" EPT read, else
/// <see cref="TdpMmu.HandleEptViolation"/>, then the frame read through the pfn the TLB cached). Host operations race
/// the vCPUs; after every one the vCPUs are held at an instruction boundary and both auditors
/// (<see cref="HostMmAuditor"/>, which needs a quiescent host, and <see cref="MmuAuditor"/>) must be clean.
/// No read may return another page's data, a freed frame, or — on pages that are never unmapped — older data than the
/// last write that completed before the read began.
/// </summary>
public class SwapAuditedRaceTests
{
    private const ulong Page = 4096;
    private const int Vcpus = 2;
    private const int PagesPerVcpu = 48;
    private const int Pages = Vcpus * PagesPerVcpu;

    /// <summary>The first pages of each vCPU's share are the only ones the host unmaps.</summary>
    private const int VolatilePerVcpu = 12;

    private const int StampBytes = 24;

    /// <summary>Checked reads a race makes at least (the host keeps stepping until then, up to a deadline).</summary>
    private const int MinimumReads = 1_000;

    [Test]
    public void Walker_vcpus_against_reclaim_pageout_munmap_and_mprotect_with_both_auditors_after_every_step(
        [Values(31, 32)] int seed, [Values] LruPolicy policy) =>
        Race(seed, hostSteps: 250, throughWalker: true, policy, SwapDeviceKind.Zram);

    [Test]
    public void Ept_fault_path_vcpus_against_reclaim_pageout_munmap_and_mprotect_with_both_auditors_after_every_step(
        [Values(41, 42)] int seed, [Values] LruPolicy policy) =>
        Race(seed, hostSteps: 150, throughWalker: false, policy, SwapDeviceKind.Zram);

    /// <summary>Both vCPU kinds once on the swap file, whose I/O is slower and so widens the windows.</summary>
    [Test]
    public void The_same_races_on_the_swap_file([Values] bool throughWalker) =>
        Race(51, hostSteps: 150, throughWalker, LruPolicy.Classic, SwapDeviceKind.File);

    /// <summary>
    /// Both vCPU kinds on a swap file with O_DIRECT (the writes read the frames while vCPUs may fault on them, and no
    /// page cache stands between a write and the next read), synchronous and with asynchronous writeback.
    /// </summary>
    [Test]
    public void The_same_races_on_a_direct_io_swap_file([Values] bool throughWalker, [Values] bool asyncWriteback)
    {
        if (!LinuxDirectIo.TryProbe(Path.GetTempPath(), out var reason))
        {
            Assert.Ignore($"direct I/O is not available in {Path.GetTempPath()}: {reason}");
        }

        Race(71, hostSteps: 100, throughWalker, LruPolicy.Classic, SwapDeviceKind.File, wholeRangePageouts: asyncWriteback, directIo: true);
    }

    /// <summary>
    /// Whole-range MADV_PAGEOUTs with 8-page reclaim batches and <see cref="ReclaimOptions.AsyncWriteback"/>, so each
    /// one's writes go to the asynchronous writeback while it unmaps the next batches: the vCPUs (walker or EPT fault
    /// path and get-user-pages) fault on pages under writeback and write them.
    /// </summary>
    [Test]
    public void Vcpus_against_asynchronous_writeback_with_both_auditors_after_every_step([Values] bool throughWalker) =>
        Race(61, hostSteps: 100, throughWalker, LruPolicy.Classic, SwapDeviceKind.File, wholeRangePageouts: true);

    /// <summary>The same races, long: <c>dotnet test Hypervisor.sln --filter TestCategory=Stress</c>.</summary>
    [Test]
    [Explicit("long stress run; select with --filter TestCategory=Stress")]
    [Category("Stress")]
    public void StressAuditedSwapRaces([Range(1, 4)] int seed, [Values] bool throughWalker, [Values] LruPolicy policy) =>
        Race(seed * 7121, hostSteps: 6_000, throughWalker, policy, SwapDeviceKind.Zram);

    private static bool IsVolatile(int page) => page % PagesPerVcpu < VolatilePerVcpu;

    private static void Race(int seed, int hostSteps, bool throughWalker, LruPolicy policy, SwapDeviceKind device, bool wholeRangePageouts = false, bool directIo = false)
    {
        using var host = new Host(new HostOptions
        {
            Memory = new HostMemoryOptions { TotalBytes = 64UL << 20, AuditFreedFrames = true }, // the minimum: the host auditor reads every frame after every step
            Swap = new SwapOptions { Kind = device, SizeBytes = 16UL << 20, DirectIo = directIo },
            Reclaim = new ReclaimOptions { Policy = policy, BatchPages = wholeRangePageouts ? 8 : 32, AsyncWriteback = wholeRangePageouts },
        });
        var mm = host.CreateMm(0, host.Reclaim.CreateCgroup("guest", Pages / 3));
        var ram = mm.Mmap(Pages * Page, Protection.Read | Protection.Write);
        var shootdown = new TlbShootdown();
        using var mmu = new TdpMmu(shootdown, new TdpMmuOptions());
        mmu.SetMemoryRegion(0, MemslotFlags.None, new Gpa(0), Pages * Page, ram, new HostProcessBacking(mm));

        var race = new RaceState(seed);
        for (var page = 0; page < Pages; page++)
        {
            HostStamp(mm, ram, race, page, generation: 1);
        }

        var vcpus = Enumerable.Range(0, Vcpus).Select(id => new Thread(() =>
        {
            try
            {
                if (throughWalker)
                {
                    RunWalkerVcpu(mmu, id, race);
                }
                else
                {
                    RunEptVcpu(mmu, host, shootdown, id, race);
                }
            }
            catch (Exception e)
            {
                race.Problems.Enqueue($"vCPU {id}: {e}");
            }
            finally
            {
                Interlocked.Increment(ref race.Finished);
            }
        })).ToList();
        vcpus.ForEach(t => t.Start());
        var steps = 0;
        try
        {
            steps = RunHost(host, mm, mmu, ram, race, hostSteps, throughWalker, wholeRangePageouts);
        }
        finally
        {
            Volatile.Write(ref race.Stop, 1);
            vcpus.ForEach(t => t.Join());
        }

        Assert.That(race.Problems, Is.Empty, string.Join(Environment.NewLine, race.Problems.Take(10)));
        Assert.That(steps, Is.GreaterThanOrEqualTo(hostSteps), "every host step ran and was audited");
        Assert.That(Interlocked.Read(ref race.CheckedReads), Is.GreaterThanOrEqualTo(MinimumReads));
        Assert.That(mm.Stats.SwapInFaults + mm.Stats.SwapCacheFaults, Is.GreaterThan(0), "faults found pages swapped out");
        Assert.That(host.Reclaim.Stats.Pswpout, Is.GreaterThan(0));
        Assert.That(host.Reclaim.Stats.Pswpin + host.Reclaim.Stats.SwapCacheHits, Is.GreaterThan(0));
        if (wholeRangePageouts)
        {
            Assert.That(host.Reclaim.Stats.WritebackAsyncPages, Is.GreaterThan(0), "pageouts went through the asynchronous writeback");
        }

        mmu.Dispose();
        mm.Exit();
        Assert.That(HostMmAuditor.Check(host), Is.Empty, "after exit");
    }

    /// <summary>
    /// Runs the host's operations, holding the vCPUs after each to audit. Returns the number of steps run. The host
    /// keeps going past <paramref name="hostSteps"/> (up to a deadline) until the vCPUs have made enough reads: on two
    /// cores they may start late.
    /// </summary>
    private static int RunHost(Host host, Mm mm, TdpMmu mmu, Hva ram, RaceState race, int hostSteps, bool throughWalker, bool wholeRangePageouts)
    {
        var random = new Random(race.Seed);
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(20);
        var step = 0;
        for (; (step < hostSteps || Interlocked.Read(ref race.CheckedReads) < MinimumReads) && DateTime.UtcNow < deadline && race.Problems.IsEmpty; step++)
        {
            var vcpu = random.Next(Vcpus);
            var first = (vcpu * PagesPerVcpu) + random.Next(PagesPerVcpu - 8);
            var at = ram + ((ulong)first * Page);
            switch (random.Next(7))
            {
                case 0 when wholeRangePageouts:
                    mm.Madvise(ram, Pages * Page, Advice.PageOut);
                    break;
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
                    // munmap then a fresh zero mapping at the same place: only on a vCPU's volatile pages.
                    var victim = (vcpu * PagesPerVcpu) + random.Next(VolatilePerVcpu - 4);
                    var count = (ulong)random.Next(1, 4);
                    var victimAt = ram + ((ulong)victim * Page);
                    mm.Munmap(victimAt, count * Page);
                    mm.Mmap(count * Page, Protection.Read | Protection.Write, MmapFlags.Fixed, victimAt);
                    break;
                case 4:
                    host.Reclaim.Step(32);
                    break;
                default:
                    // The host writes pages: in the walker race only the volatile ones (the vCPUs version the others).
                    for (var page = first; page < first + 4; page++)
                    {
                        if (!throughWalker || IsVolatile(page))
                        {
                            HostStamp(mm, ram, race, page, generation: (ulong)step + 2);
                        }
                    }

                    break;
            }

            AuditWithVcpusHeld(host, mmu, race, step);
        }

        return step;
    }

    /// <summary>Holds every vCPU at an instruction boundary, outside guest mode, runs both auditors, releases them.</summary>
    private static void AuditWithVcpusHeld(Host host, TdpMmu mmu, RaceState race, int step)
    {
        var epoch = step + 1L;
        Volatile.Write(ref race.Arrived, 0);
        Volatile.Write(ref race.HoldEpoch, epoch);
        var spin = default(SpinWait);
        while (Volatile.Read(ref race.Arrived) + Volatile.Read(ref race.Finished) < Vcpus)
        {
            spin.SpinOnce();
        }

        foreach (var violation in HostMmAuditor.Check(host))
        {
            race.Problems.Enqueue($"host auditor after step {step}: {violation}");
        }

        foreach (var violation in MmuAuditor.Check(mmu))
        {
            race.Problems.Enqueue($"MMU auditor after step {step}: {violation}");
        }

        Volatile.Write(ref race.ReleasedEpoch, epoch);
    }

    /// <summary>At an instruction boundary: if the host asked, leaves guest mode and waits until it releases the vCPU.</summary>
    private static void HoldIfAsked(RaceState race, VcpuTlbPort port, ref long heldEpoch)
    {
        var asked = Volatile.Read(ref race.HoldEpoch);
        if (asked == heldEpoch)
        {
            return;
        }

        heldEpoch = asked;
        port.ExitGuest();
        Interlocked.Increment(ref race.Arrived);
        var spin = default(SpinWait);
        while (Volatile.Read(ref race.ReleasedEpoch) < asked && Volatile.Read(ref race.Stop) == 0)
        {
            spin.SpinOnce();
        }

        port.EnterGuest();
    }

    /// <summary>
    /// A vCPU with paging off through <see cref="MmuContext"/>. On its stable pages it is the only writer and checks
    /// every read against the version it last wrote; on its volatile pages (which the host writes and unmaps) it checks
    /// that a sealed stamp names the page.
    /// </summary>
    private static void RunWalkerVcpu(TdpMmu mmu, int id, RaceState race)
    {
        var random = new Random((race.Seed * 100) + id);
        var versions = new ulong[PagesPerVcpu];
        var stamp = new byte[StampBytes];
        long heldEpoch = 0;
        using var cpu = new MmuContext(mmu, id, PagingContext.PagingOff);
        cpu.Port.EnterGuest();
        try
        {
            while (Volatile.Read(ref race.Stop) == 0 && race.Problems.IsEmpty)
            {
                HoldIfAsked(race, cpu.Port, ref heldEpoch);
                cpu.Port.ServiceRequests(); // instruction-block boundary
                var index = random.Next(PagesPerVcpu);
                var page = (id * PagesPerVcpu) + index;
                var gva = new Gva((ulong)page * Page);
                if (!IsVolatile(page) && random.Next(3) == 0)
                {
                    var version = versions[index] + 1;
                    WriteStamp(stamp, (ulong)page, version);
                    if (cpu.Write(gva, stamp).IsOk)
                    {
                        versions[index] = version; // refused while the host has the page read-only: not counted
                    }

                    continue;
                }

                var result = cpu.Read(gva, stamp);
                if (!result.IsOk)
                {
                    if (!IsVolatile(page) || result.Status != TranslationStatus.Error)
                    {
                        race.Problems.Enqueue($"vCPU {id}: read of page {page} gave {result.Status} {result.Fault} ({cpu.Walker.LastFailureDetail})");
                    }

                    continue;
                }

                Interlocked.Increment(ref race.CheckedReads);

                if (IsVolatile(page))
                {
                    CheckOwner(race, id, page, stamp);
                    continue;
                }

                var expected = versions[index] == 0 ? 1 : versions[index]; // the host's generation-1 stamp until the first write
                var owner = BinaryPrimitives.ReadUInt64LittleEndian(stamp);
                var seen = BinaryPrimitives.ReadUInt64LittleEndian(stamp.AsSpan(8));
                if (!TryReadStamp(stamp, out _) || owner != (ulong)page || seen != expected)
                {
                    race.Problems.Enqueue($"vCPU {id}: page {page} read (owner {owner}, version {seen}), expected version {expected}: {Describe(stamp)}");
                }
            }
        }
        finally
        {
            cpu.Port.ExitGuest();
        }
    }

    /// <summary>
    /// A vCPU that only reads, through a TLB of its own filled from present sptes, taking EPT violations to
    /// <see cref="TdpMmu.HandleEptViolation"/> (whose get-user-pages swaps pages in). A stable page must read its own
    /// stamp, at least as new as the host's last completed write before the read began.
    /// </summary>
    private static void RunEptVcpu(TdpMmu mmu, Host host, TlbShootdown shootdown, int id, RaceState race)
    {
        var random = new Random((race.Seed * 100) + id);
        var tlb = new Dictionary<int, Pfn>();
        var port = new VcpuTlbPort(id, tlb.Clear);
        shootdown.Add(port);
        var stamp = new byte[StampBytes];
        long heldEpoch = 0;
        port.EnterGuest();
        try
        {
            while (Volatile.Read(ref race.Stop) == 0 && race.Problems.IsEmpty)
            {
                HoldIfAsked(race, port, ref heldEpoch);
                port.ServiceRequests(); // instruction-block boundary
                var page = random.Next(Pages);
                var gpa = new Gpa((ulong)page * Page);
                if (!tlb.TryGetValue(page, out var pfn))
                {
                    var spte = mmu.Ept.Read(gpa.Gfn);
                    if (!spte.IsPresent || spte.IsAccessTracked)
                    {
                        port.ExitGuest();
                        var result = mmu.HandleEptViolation(gpa, EptAccess.Read);
                        port.EnterGuest();
                        var allowed = result.Outcome is EptFaultOutcome.Installed or EptFaultOutcome.AlreadyMapped
                            || (result.Outcome == EptFaultOutcome.HostFault && IsVolatile(page));
                        if (!allowed)
                        {
                            race.Problems.Enqueue($"vCPU {id}: EPT violation at {gpa} (page {page}) gave {result.Outcome}");
                        }

                        continue; // re-execute: the next EPT read finds the spte, or faults again
                    }

                    pfn = spte.Pfn;
                    tlb[page] = pfn;
                }

                var floor = Volatile.Read(ref race.Completed[page]);
                host.Memory.FrameBytes(pfn)[..StampBytes].CopyTo(stamp);
                Interlocked.Increment(ref race.CheckedReads);
                if (IsVolatile(page))
                {
                    CheckOwner(race, id, page, stamp);
                    continue;
                }

                if (stamp.All(b => b == HostMemory.PoisonByte))
                {
                    race.Problems.Enqueue($"vCPU {id}: page {page} read a freed frame {pfn}");
                }
                else if (TryReadStamp(stamp, out var owner))
                {
                    var generation = BinaryPrimitives.ReadUInt64LittleEndian(stamp.AsSpan(8));
                    if (owner != (ulong)page || generation < floor)
                    {
                        race.Problems.Enqueue($"vCPU {id}: page {page} read page {owner}'s generation {generation} from {pfn}, expected this page's at least {floor}");
                    }
                }
                else if (stamp.All(b => b == 0))
                {
                    race.Problems.Enqueue($"vCPU {id}: page {page} read zeroes from {pfn}: its data (generation {floor}) was lost");
                }

                // A torn stamp (the host writing the next generation during the copy) accuses nothing.
            }
        }
        finally
        {
            port.ExitGuest();
        }
    }

    /// <summary>A read of a page the host may unmap: zeroes or a torn stamp are allowed, a freed frame or another page's stamp are not.</summary>
    private static void CheckOwner(RaceState race, int id, int page, byte[] stamp)
    {
        if (stamp.All(b => b == HostMemory.PoisonByte))
        {
            race.Problems.Enqueue($"vCPU {id}: volatile page {page} read a freed frame");
        }
        else if (TryReadStamp(stamp, out var owner) && owner != (ulong)page)
        {
            race.Problems.Enqueue($"vCPU {id}: volatile page {page} read page {owner}'s data");
        }
    }

    private static void HostStamp(Mm mm, Hva ram, RaceState race, int page, ulong generation)
    {
        var stamp = new byte[StampBytes];
        WriteStamp(stamp, (ulong)page, generation);
        mm.Write(ram + ((ulong)page * Page), stamp);
        Volatile.Write(ref race.Completed[page], generation);
    }

    private static string Describe(byte[] stamp) =>
        stamp.All(b => b == HostMemory.PoisonByte) ? "a freed frame" : stamp.All(b => b == 0) ? "zeroes" : Convert.ToHexString(stamp);

    private static void WriteStamp(Span<byte> stamp, ulong page, ulong generation)
    {
        BinaryPrimitives.WriteUInt64LittleEndian(stamp, page);
        BinaryPrimitives.WriteUInt64LittleEndian(stamp[8..], generation);
        BinaryPrimitives.WriteUInt64LittleEndian(stamp[16..], Seal(page, generation));
    }

    private static bool TryReadStamp(ReadOnlySpan<byte> stamp, out ulong owner)
    {
        owner = BinaryPrimitives.ReadUInt64LittleEndian(stamp);
        var generation = BinaryPrimitives.ReadUInt64LittleEndian(stamp[8..]);
        return generation != 0 && BinaryPrimitives.ReadUInt64LittleEndian(stamp[16..]) == Seal(owner, generation);
    }

    private static ulong Seal(ulong page, ulong generation) => ~((page * 0x9E37_79B9_7F4A_7C15UL) ^ generation);

    /// <summary>State shared by the host thread and the vCPUs of one race.</summary>
    private sealed class RaceState(int seed)
    {
        public readonly int Seed = seed;
        public readonly ConcurrentQueue<string> Problems = new();

        /// <summary>Per page, the generation of the host's last completed write (EPT race: a read's lower bound).</summary>
        public readonly ulong[] Completed = new ulong[Pages];

        public int Stop;
        public int Finished;
        public int Arrived;
        public long HoldEpoch;
        public long ReleasedEpoch;
        public long CheckedReads;
    }
}
