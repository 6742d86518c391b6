using System.Buffers.Binary;
using System.Collections.Concurrent;
using Hypervisor.GuestMmu.Addresses;
using Hypervisor.GuestMmu.Mmu;
using Hypervisor.GuestMmu.Tlb;
using Hypervisor.GuestMmu.Walker;
using Hypervisor.HostMm;
using Hypervisor.HostMm.Frames;
using Hypervisor.HostMm.Ksm;
using Hypervisor.HostMm.Swap;
using Hypervisor.Notifier;

namespace Hypervisor.GuestMmu.Tests.Mmu;

/// <summary>
/// Seeded races of two guests' vCPUs on one host against the merging KSM scanner and reclaim (each guest in a cgroup
/// below its RAM, swap on zram). Guest RAM is mergeable and holds only <see cref="Kinds"/> distinct page contents, so
/// pages merge within and across the guests all the time, guest writes keep breaking them copy-on-write and
/// MADV_UNMERGEABLE now and then unshares a run of them (<c>break_ksm</c>); reclaim swaps KSM pages out through
/// their sharers and faults bring them back. Per
/// guest, vCPU 0 reads and writes its pages through the walker (<see cref="MmuContext"/>, whose EPT violations run
/// <see cref="TdpMmu.HandleEptViolation"/>); vCPU 1 reads its pages as hardware does, through present sptes cached in
/// a TLB of its own, and the host (the model) rewrites them at quiescent points. The test thread is ksmd: after every
/// <c>Step</c> it holds the vCPUs at an instruction boundary and the reclaim thread between its steps, runs both
/// auditors (<see cref="HostMmAuditor"/>, <see cref="MmuAuditor"/>) and releases them.
/// Every read must return exactly the content its page was last given (by its vCPU or the model): merging never
/// changes what a guest reads, and a write to a merged page is private to the writer.
/// </summary>
public class KsmAuditedRaceTests
{
    private const ulong Page = HostGuest.Page;
    private const int Guests = 2;
    private const int VcpusPerGuest = 2;
    private const int PagesPerVcpu = 24;
    private const int PagesPerGuest = VcpusPerGuest * PagesPerVcpu;

    /// <summary>Distinct contents a page can hold: kind 0 is the zero page's.</summary>
    private const int Kinds = 4;

    /// <summary>Checked reads a race makes at least (ksmd keeps stepping until then, up to a deadline).</summary>
    private const int MinimumReads = 1_000;

    /// <summary>The vCPUs and the reclaim thread: every one of them is held at each audit.</summary>
    private const int Participants = (Guests * VcpusPerGuest) + 1;

    private static readonly byte[][] Contents = [.. Enumerable.Range(0, Kinds).Select(Content)];

    [Test]
    public void Vcpus_of_two_guests_against_the_merging_scanner_and_reclaim_with_both_auditors_after_every_scan_step(
        [Values(61, 62)] int seed, [Values(256, 2)] int maxPageSharing) =>
        Race(seed, scanSteps: 150, maxPageSharing, useZeroPages: false);

    /// <summary>With <c>use_zero_pages</c>, zero-filled pages merge with the shared zero page instead of a KSM page.</summary>
    [Test]
    public void The_same_race_with_use_zero_pages() => Race(71, scanSteps: 150, maxPageSharing: 256, useZeroPages: true);

    /// <summary>
    /// With the host's <c>LegacyChangePte</c> (2.6.32–6.9), <c>replace_page</c> also calls change_pte inside its
    /// start/end: under racing vCPUs it still never finds an spte to change, since the start zapped it and the fault
    /// path cannot refill it before the end (why 6.10 removed the op).
    /// </summary>
    [Test]
    public void The_same_race_with_legacy_change_pte_never_finds_an_spte_to_change() =>
        Race(81, scanSteps: 150, maxPageSharing: 256, useZeroPages: false, legacyChangePte: true);

    /// <summary>The same races, long: <c>dotnet test Hypervisor.sln --filter TestCategory=Stress</c>.</summary>
    [Test]
    [Explicit("long stress run; select with --filter TestCategory=Stress")]
    [Category("Stress")]
    public void StressAuditedKsmRaces([Range(1, 4)] int seed, [Values(256, 2)] int maxPageSharing, [Values] bool useZeroPages) =>
        Race(seed * 7919, scanSteps: 5_000, maxPageSharing, useZeroPages);

    private static void Race(int seed, int scanSteps, int maxPageSharing, bool useZeroPages, bool legacyChangePte = false)
    {
        using var host = new Host(new HostOptions
        {
            LegacyChangePte = legacyChangePte,
            Memory = new HostMemoryOptions { TotalBytes = 64UL << 20, AuditFreedFrames = true }, // the minimum: the host auditor reads every frame after every step
            Swap = new SwapOptions { Kind = SwapDeviceKind.Zram, SizeBytes = 16UL << 20 },
        });
        var guests = Enumerable.Range(0, Guests)
            .Select(g => new HostGuest(host, PagesPerGuest, host.Reclaim.CreateCgroup($"guest{g}", PagesPerGuest * 2 / 3)))
            .ToArray();
        var race = new RaceState(seed);
        var random = new Random(seed);
        try
        {
            foreach (var (guest, g) in guests.Select((guest, g) => (guest, g)))
            {
                for (var page = 0; page < PagesPerGuest; page++)
                {
                    ModelWrite(guest, race, g, page, random.Next(Kinds));
                }

                guest.Mm.Madvise(guest.Ram, PagesPerGuest * Page, Advice.Mergeable);
            }

            var swapOuts = new KsmSwapOutCounter(host.Memory);
            host.Trace = swapOuts;
            host.Ksm.MaxPageSharing = maxPageSharing;
            host.Ksm.UseZeroPages = useZeroPages;
            host.Ksm.Run = KsmRunMode.Merge;
            var threads = new List<Thread>();
            for (var g = 0; g < Guests; g++)
            {
                var guest = guests[g];
                var index = g;
                threads.Add(Participant(race, $"guest {g} walker vCPU", () => RunWalkerVcpu(guest, index, race)));
                threads.Add(Participant(race, $"guest {g} EPT vCPU", () => RunEptVcpu(guest, index, race)));
            }

            threads.Add(Participant(race, "reclaim", () => RunReclaim(host, guests, race)));
            threads.ForEach(t => t.Start());
            var steps = 0;
            try
            {
                steps = RunScanner(host, guests, race, scanSteps);
            }
            finally
            {
                Volatile.Write(ref race.Stop, 1);
                threads.ForEach(t => t.Join());
            }

            Assert.That(race.Problems, Is.Empty, string.Join(Environment.NewLine, race.Problems.Take(10)));
            Assert.That(steps, Is.GreaterThanOrEqualTo(scanSteps), "every scanner step ran and was audited");
            Assert.That(Interlocked.Read(ref race.CheckedReads), Is.GreaterThanOrEqualTo(MinimumReads));
            var stats = host.Ksm.Stats;
            Assert.That(stats.Merges, Is.GreaterThan(0), "pages merged");
            Assert.That(race.PeakSharing, Is.GreaterThan(0), "an audit saw merged pages (pages_sharing or ksm_zero_pages)");
            Assert.That(host.Stats.CowKsm, Is.GreaterThan(0), "writes broke merged pages copy-on-write");
            Assert.That(host.Reclaim.Stats.Pswpout, Is.GreaterThan(0), "reclaim swapped pages out");
            Assert.That(race.Unmerges, Is.GreaterThan(0), "MADV_UNMERGEABLE raced the vCPUs");
            Assert.That(swapOuts.KsmSwapEntries, Is.GreaterThan(0), "reclaim swapped KSM pages out (every sharer's PTE became a swap entry)");
            if (legacyChangePte)
            {
                Assert.That(guests.Sum(g => g.Mmu.Stats.ChangePteMisses), Is.GreaterThan(0), "replace_page called change_pte");
                Assert.That(guests.Sum(g => g.Mmu.Stats.ChangePteHits), Is.Zero, "inside start/end the spte was always gone already");
            }

            if (maxPageSharing == 2)
            {
                Assert.That(race.PeakDups, Is.GreaterThan(0), "the sharing limit made chains of duplicate KSM pages");
            }
        }
        finally
        {
            foreach (var guest in guests)
            {
                guest.Dispose();
            }
        }

        Assert.That(HostMmAuditor.Check(host), Is.Empty, "after exit");
    }

    private static Thread Participant(RaceState race, string name, Action body) => new(() =>
    {
        try
        {
            body();
        }
        catch (Exception e)
        {
            race.Problems.Enqueue($"{name}: {e}");
        }
        finally
        {
            Interlocked.Increment(ref race.Finished);
        }
    });

    /// <summary>
    /// ksmd on the test thread: a scan step of a random budget (now and then after an unmerge of a run of pages), then
    /// an audit with everyone held, during which the model rewrites a few of the EPT vCPUs' pages. Returns the steps run: past <paramref name="scanSteps"/> (up to a
    /// deadline) until the vCPUs have made enough reads, as on two cores they may start late.
    /// </summary>
    private static int RunScanner(Host host, HostGuest[] guests, RaceState race, int scanSteps)
    {
        var random = new Random(race.Seed * 3);
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(20 + (scanSteps / 100));
        var step = 0;
        for (; (step < scanSteps || Interlocked.Read(ref race.CheckedReads) < MinimumReads) && DateTime.UtcNow < deadline && race.Problems.IsEmpty; step++)
        {
            if (random.Next(16) == 0)
            {
                // break_ksm racing the vCPUs and reclaim: MADV_UNMERGEABLE unshares every merged page of a run (the
                // VMA splits), MADV_MERGEABLE puts the run back for later scans.
                var guest = guests[random.Next(Guests)];
                var first = (ulong)random.Next(PagesPerGuest - 8);
                guest.Mm.Madvise(guest.HvaOf(first), 8 * Page, Advice.Unmergeable);
                race.Unmerges++;
                guest.Mm.Madvise(guest.HvaOf(first), 8 * Page, Advice.Mergeable);
            }

            host.Ksm.Step(random.Next(8, 65));
            HoldEveryone(race, step);
            try
            {
                Audit(host, guests, race, step);
                for (var i = random.Next(4); i > 0; i--)
                {
                    var g = random.Next(Guests);
                    ModelWrite(guests[g], race, g, PagesPerVcpu + random.Next(PagesPerVcpu), random.Next(Kinds));
                }
            }
            finally
            {
                Volatile.Write(ref race.ReleasedEpoch, step + 1L);
            }
        }

        return step;
    }

    private static void Audit(Host host, HostGuest[] guests, RaceState race, int step)
    {
        foreach (var violation in HostMmAuditor.Check(host))
        {
            race.Problems.Enqueue($"host auditor after scan step {step}: {violation}");
        }

        foreach (var (guest, g) in guests.Select((guest, g) => (guest, g)))
        {
            foreach (var violation in MmuAuditor.Check(guest.Mmu))
            {
                race.Problems.Enqueue($"guest {g}'s MMU auditor after scan step {step}: {violation}");
            }
        }

        var stats = host.Ksm.Stats;
        race.PeakSharing = Math.Max(race.PeakSharing, stats.PagesSharing + stats.KsmZeroPages);
        race.PeakDups = Math.Max(race.PeakDups, stats.StableNodeDups);
    }

    /// <summary>Asks every participant to stop at its next boundary and waits until all have (or finished).</summary>
    private static void HoldEveryone(RaceState race, int step)
    {
        Volatile.Write(ref race.Arrived, 0);
        Volatile.Write(ref race.HoldEpoch, step + 1L);
        var spin = default(SpinWait);
        while (Volatile.Read(ref race.Arrived) + Volatile.Read(ref race.Finished) < Participants)
        {
            spin.SpinOnce();
        }
    }

    /// <summary>At a boundary: if ksmd asked, leaves guest mode (a vCPU) and waits until it releases everyone.</summary>
    private static void HoldIfAsked(RaceState race, VcpuTlbPort? port, ref long heldEpoch)
    {
        var asked = Volatile.Read(ref race.HoldEpoch);
        if (asked == heldEpoch)
        {
            return;
        }

        heldEpoch = asked;
        port?.ExitGuest();
        Interlocked.Increment(ref race.Arrived);
        var spin = default(SpinWait);
        while (Volatile.Read(ref race.ReleasedEpoch) < asked && Volatile.Read(ref race.Stop) == 0)
        {
            spin.SpinOnce();
        }

        port?.EnterGuest();
    }

    /// <summary>
    /// A vCPU with paging off through <see cref="MmuContext"/>, the only writer of the first
    /// <see cref="PagesPerVcpu"/> pages of its guest: writes a random kind of content (one store of a whole page),
    /// or reads a page and checks it is exactly the kind it last wrote.
    /// </summary>
    private static void RunWalkerVcpu(HostGuest guest, int g, RaceState race)
    {
        var random = new Random((race.Seed * 100) + g);
        var buffer = new byte[Page];
        long heldEpoch = 0;
        using var cpu = new MmuContext(guest.Mmu, 0, PagingContext.PagingOff);
        cpu.Port.EnterGuest();
        try
        {
            while (Volatile.Read(ref race.Stop) == 0 && race.Problems.IsEmpty)
            {
                HoldIfAsked(race, cpu.Port, ref heldEpoch);
                cpu.Port.ServiceRequests(); // instruction-block boundary
                var page = random.Next(PagesPerVcpu);
                var gva = new Gva((ulong)page * Page);
                if (random.Next(3) == 0)
                {
                    var kind = random.Next(Kinds);
                    var written = cpu.Write(gva, Contents[kind]);
                    if (written.IsOk)
                    {
                        race.Expected[g][page] = kind;
                    }
                    else
                    {
                        race.Problems.Enqueue($"guest {g}: write of page {page} gave {written.Status} {written.Fault} ({cpu.Walker.LastFailureDetail})");
                    }

                    continue;
                }

                var read = cpu.Read(gva, buffer);
                if (!read.IsOk)
                {
                    race.Problems.Enqueue($"guest {g}: read of page {page} gave {read.Status} {read.Fault} ({cpu.Walker.LastFailureDetail})");
                    continue;
                }

                Interlocked.Increment(ref race.CheckedReads);
                Check(race, g, page, buffer, "walker");
            }
        }
        finally
        {
            cpu.Port.ExitGuest();
        }
    }

    /// <summary>
    /// A vCPU that reads the second <see cref="PagesPerVcpu"/> pages of its guest as hardware does: through a TLB of
    /// its own filled from present sptes (flushed by shootdowns), taking EPT violations to
    /// <see cref="TdpMmu.HandleEptViolation"/> (which swaps pages in). Only the model writes these pages, while this
    /// vCPU is held, so every read must be exactly the model's last content.
    /// </summary>
    private static void RunEptVcpu(HostGuest guest, int g, RaceState race)
    {
        var random = new Random((race.Seed * 100) + 50 + g);
        var tlb = new Dictionary<int, Pfn>();
        var port = new VcpuTlbPort(1, tlb.Clear);
        guest.Shootdown.Add(port);
        var buffer = new byte[Page];
        long heldEpoch = 0;
        port.EnterGuest();
        try
        {
            while (Volatile.Read(ref race.Stop) == 0 && race.Problems.IsEmpty)
            {
                HoldIfAsked(race, port, ref heldEpoch);
                port.ServiceRequests(); // instruction-block boundary
                var page = PagesPerVcpu + random.Next(PagesPerVcpu);
                var gpa = new Gpa((ulong)page * Page);
                if (!tlb.TryGetValue(page, out var pfn))
                {
                    var spte = guest.Mmu.Ept.Read(gpa.Gfn);
                    if (!spte.IsPresent || spte.IsAccessTracked)
                    {
                        port.ExitGuest();
                        var result = guest.Mmu.HandleEptViolation(gpa, EptAccess.Read);
                        port.EnterGuest();
                        if (result.Outcome is not (EptFaultOutcome.Installed or EptFaultOutcome.AlreadyMapped))
                        {
                            race.Problems.Enqueue($"guest {g}: EPT violation at {gpa} (page {page}) gave {result.Outcome} {result.Detail}");
                        }

                        continue; // re-execute: the next EPT read finds the spte, or faults again
                    }

                    pfn = spte.Pfn;
                    tlb[page] = pfn;
                }

                guest.Host.Memory.FrameBytes(pfn)[..(int)Page].CopyTo(buffer);
                Interlocked.Increment(ref race.CheckedReads);
                Check(race, g, page, buffer, $"EPT (pfn {pfn})");
            }
        }
        finally
        {
            port.ExitGuest();
            guest.Shootdown.Remove(port);
        }
    }

    /// <summary>Reclaim racing everything: kswapd-style steps and MADV_PAGEOUT of a random run of a guest's pages.</summary>
    private static void RunReclaim(Host host, HostGuest[] guests, RaceState race)
    {
        var random = new Random((race.Seed * 100) + 99);
        long heldEpoch = 0;
        while (Volatile.Read(ref race.Stop) == 0 && race.Problems.IsEmpty)
        {
            HoldIfAsked(race, null, ref heldEpoch);
            if (random.Next(2) == 0)
            {
                host.Reclaim.Step(16);
            }
            else
            {
                var guest = guests[random.Next(Guests)];
                var first = (ulong)random.Next(PagesPerGuest - 8);
                guest.Mm.Madvise(guest.HvaOf(first), 8 * Page, Advice.PageOut);
            }

            Thread.Yield();
        }
    }

    private static void Check(RaceState race, int g, int page, byte[] read, string path)
    {
        var expected = race.Expected[g][page];
        if (!read.AsSpan().SequenceEqual(Contents[expected]))
        {
            race.Problems.Enqueue($"guest {g} page {page} through the {path} read {Describe(read)}, expected kind {expected}");
        }
    }

    /// <summary>The host writes a page (breaking a merge copy-on-write) and the model records its new content.</summary>
    private static void ModelWrite(HostGuest guest, RaceState race, int g, int page, int kind)
    {
        guest.Mm.Write(guest.HvaOf((ulong)page), Contents[kind]);
        race.Expected[g][page] = kind;
    }

    private static string Describe(byte[] read)
    {
        if (read.All(b => b == HostMemory.PoisonByte))
        {
            return "a freed frame";
        }

        for (var kind = 0; kind < Kinds; kind++)
        {
            if (read.AsSpan().SequenceEqual(Contents[kind]))
            {
                return $"kind {kind}";
            }
        }

        return $"no kind ({Convert.ToHexString(read, 0, 24)}...)";
    }

    /// <summary>A page of content <paramref name="kind"/>: kind 0 is zeroes, others are distinct non-zero patterns.</summary>
    private static byte[] Content(int kind)
    {
        var page = new byte[Page];
        if (kind != 0)
        {
            for (var i = 0; i < page.Length; i += 8)
            {
                BinaryPrimitives.WriteUInt64LittleEndian(page.AsSpan(i), ((ulong)kind * 0x9E37_79B9_7F4A_7C15UL) ^ (ulong)i);
            }
        }

        return page;
    }

    /// <summary>State shared by ksmd (the test thread), the vCPUs and the reclaim thread of one race.</summary>
    private sealed class RaceState(int seed)
    {
        public readonly int Seed = seed;
        public readonly ConcurrentQueue<string> Problems = new();

        /// <summary>
        /// Per guest and page, the kind of content last written. A walker vCPU's pages change only on its own
        /// thread; an EPT vCPU's only on ksmd's while that vCPU is held (the hold and release order them).
        /// </summary>
        public readonly int[][] Expected = [.. Enumerable.Range(0, Guests).Select(_ => new int[PagesPerGuest])];

        public int Stop;
        public int Finished;
        public int Arrived;
        public long HoldEpoch;
        public long ReleasedEpoch;
        public long CheckedReads;
        public long PeakSharing;
        public long PeakDups;
        public int Unmerges;
    }
}
