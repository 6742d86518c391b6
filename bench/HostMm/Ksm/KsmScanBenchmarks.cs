using System.Globalization;
using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Configs;
using Hypervisor.GuestMmu.Addresses;
using Hypervisor.GuestMmu.Mmu;
using Hypervisor.HostMm;
using Hypervisor.HostMm.Frames;
using Hypervisor.HostMm.Ksm;
using Hypervisor.HostMm.Vmas;
using Hypervisor.Notifier;
using Hypervisor.Vmm.Bench;
using HostProcess = Hypervisor.HostMm.Mm;

namespace Hypervisor.Bench.HostMm.Ksm;

/// <summary>
/// KSM's scan rate beside Linux's ksmd scanning the same number of pages of the same contents in the same run, and
/// the cost of a merge with and without a secondary MMU. Means are per page.
/// </summary>
/// <remarks>
/// <para>Scan: <see cref="Pages"/> mergeable pages of unique contents (<see cref="KsmBenchPages"/>) that do not
/// change, two full scans per invocation: each visit checksums the page, finds the checksum unchanged, misses the
/// stable tree and inserts the page into the unstable tree (rebuilt every full scan); nothing merges. Smart scan is
/// off on both sides, so no visit is skipped. The kernel row (baseline) times ksmd with <c>sleep_millisecs=0</c> from
/// <c>run=1</c> until <c>full_scans</c> has grown by 2; every knob is saved before and restored after (see
/// <see cref="LinuxKsmdScan"/>). Where <c>/sys/kernel/mm/ksm</c> is not writable the kernel row is dropped with a
/// line saying why (<see cref="LinuxKsmdConfig"/>). Target (issue 12): ≥ 1 M pages/s on one core. The simulated
/// scanner files pages in hash tables by their xxHash3-64 (each hit confirmed by a full compare) where Linux walks
/// content-ordered rbtrees comparing pages at every level, and ksmd runs at nice 5: other load on the machine's two
/// cores slows the kernel row (4.7 µs per page idle, 9.5 µs at a load average of 5, on the development machine).</para>
/// <para>Merge: two processes whose page i holds the same content (unique per i), <see cref="MergePairs"/> pairs.
/// Each invocation starts from unmerged pages whose checksums are recorded (an untimed full scan after
/// <c>run=2</c>) and runs the full scan that merges them all: per pair, the first page goes into the unstable tree,
/// the second finds it, and <c>try_to_merge_two_pages</c> write-protects both (<c>write_protect_page</c>), replaces
/// the second by the first (<c>replace_page</c>) and inserts the stable node. Mean per merged page
/// (<c>pages_sharing</c> grows by one per pair). Baseline: no secondary MMU; beside it the same with each process a
/// guest whose EPT maps every page, so each start zaps an spte and flushes the vCPU TLBs.</para>
/// </remarks>
[Config(typeof(LinuxKsmdConfig))]
[GroupBenchmarksBy(BenchmarkLogicalGroupRule.ByCategory)]
[CategoriesColumn]
public class KsmScanBenchmarks
{
    /// <summary>Mergeable pages scanned (256 MiB).</summary>
    public const int Pages = 64 * 1024;

    /// <summary>Page pairs merged per invocation (2 × 64 MiB).</summary>
    public const int MergePairs = 16 * 1024;

    /// <summary>Full scans per invocation of the scan rows, on both sides.</summary>
    private const int Scans = 2;

    private const ulong PageSize = KsmBenchPages.PageSize;

    private static readonly TimeSpan KsmdTimeout = TimeSpan.FromMinutes(2);

    private LinuxKsmdScan? _linux;
    private Host? _scanHost;
    private Host? _mergeHost;
    private BenchVm[] _mergeVms = [];

    [GlobalSetup(Target = nameof(LinuxKsmd))]
    public void SetupLinux()
    {
        _linux = new LinuxKsmdScan(Pages);

        // The first scan makes an rmap item per page and records checksums; the next brings ksmd to steady state.
        _linux.RunFullScans(2, KsmdTimeout);
        _linux.Stop();
    }

    /// <summary>Untimed: stopping ksmd waits for the scan it is in (see <see cref="LinuxKsmdScan"/>).</summary>
    [IterationCleanup(Target = nameof(LinuxKsmd))]
    public void StopLinux() => _linux!.Stop();

    [GlobalCleanup(Target = nameof(LinuxKsmd))]
    public void CleanupLinux()
    {
        var (scanned, runs) = (_linux?.PagesScanned ?? 0, _linux?.Runs ?? 0);
        _linux?.Dispose();
        if (runs > 0)
        {
            // ksmd scans every mergeable region on the machine: this line shows whether only ours was there.
            var perRun = (double)scanned / runs;
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"// Linux ksmd: {perRun:N0} pages_scanned per invocation (expected {Scans * Pages:N0}: {Scans} full scans of {Pages:N0} pages)"));
        }
    }

    [Benchmark(Baseline = true, OperationsPerInvoke = Scans * Pages, Description = "Linux ksmd: full scans of unchanged unique pages, sleep_millisecs=0")]
    [BenchmarkCategory("Scan")]
    public long LinuxKsmd() => _linux!.RunFullScans(Scans, KsmdTimeout);

    [GlobalSetup(Target = nameof(Scan))]
    public void SetupScan()
    {
        _scanHost = new Host(new HostOptions { Memory = new HostMemoryOptions { TotalBytes = (Pages * PageSize) + (64UL << 20) } });
        var mm = _scanHost.CreateMm();
        var ram = mm.Mmap(Pages * PageSize, Protection.Read | Protection.Write);
        var page = new byte[PageSize];
        for (var i = 0; i < Pages; i++)
        {
            KsmBenchPages.Fill(page, i);
            mm.Write(ram + ((ulong)i * PageSize), page);
        }

        mm.Madvise(ram, Pages * PageSize, Advice.Mergeable);
        _scanHost.Ksm.SmartScan = false;
        _scanHost.Ksm.Run = KsmRunMode.Merge;

        // As on the kernel side: the first scan makes the rmap items and records checksums, then steady state.
        TieringWarmup.Run(() => FullScans(_scanHost, 1));
    }

    /// <summary>One invocation per iteration, as the kernel row runs, so the two share a job and a Ratio.</summary>
    [IterationSetup(Target = nameof(Scan))]
    public void NothingToPrepare()
    {
    }

    [GlobalCleanup(Target = nameof(Scan))]
    public void CleanupScan() => _scanHost?.Dispose();

    [Benchmark(OperationsPerInvoke = Scans * Pages, Description = "KsmScanner.Step: full scans of unchanged unique pages")]
    [BenchmarkCategory("Scan")]
    public long Scan()
    {
        var before = _scanHost!.Ksm.Stats;
        FullScans(_scanHost, Scans);
        var after = _scanHost.Ksm.Stats;
        if (after.PagesScanned - before.PagesScanned != Scans * Pages || after.Merges != before.Merges)
        {
            throw new InvalidOperationException($"{after.PagesScanned - before.PagesScanned} pages scanned ({Scans * Pages} expected), {after.Merges - before.Merges} merges (0 expected)");
        }

        return after.PagesScanned;
    }

    [GlobalSetup(Target = nameof(MergePrimaryOnly))]
    public void SetupMergePrimaryOnly() => SetupMerge(secondary: false);

    [GlobalSetup(Target = nameof(MergeWithSecondary))]
    public void SetupMergeWithSecondary() => SetupMerge(secondary: true);

    [GlobalCleanup(Targets = [nameof(MergePrimaryOnly), nameof(MergeWithSecondary)])]
    public void CleanupMerge()
    {
        foreach (var vm in _mergeVms)
        {
            vm.Dispose();
        }

        _mergeHost?.Dispose();
    }

    /// <summary>
    /// Unmerges everything (<c>run=2</c>: every KSM page broken, every rmap item dropped), maps the guests' pages
    /// in their EPTs again, and records every checksum with one full scan, which merges nothing (a first visit only
    /// stores the checksum).
    /// </summary>
    [IterationSetup(Targets = [nameof(MergePrimaryOnly), nameof(MergeWithSecondary)])]
    public void PrepareMerge()
    {
        var ksm = _mergeHost!.Ksm;
        ksm.Run = KsmRunMode.Unmerge;
        ksm.Step(4 * MergePairs);
        if (ksm.Stats is { PagesShared: not 0 } or { PagesSharing: not 0 } or { RmapItems: not 0 })
        {
            throw new InvalidOperationException($"run=2 left {ksm.Stats}");
        }

        foreach (var vm in _mergeVms)
        {
            for (ulong i = 0; i < MergePairs; i++)
            {
                var result = vm.Mmu.HandleEptViolation(new Gfn(i).ToGpa(), EptAccess.Write);
                if (result.Outcome is not (EptFaultOutcome.Installed or EptFaultOutcome.AlreadyMapped))
                {
                    throw new InvalidOperationException($"EPT fault-in of page {i}: {result.Outcome}");
                }
            }
        }

        ksm.Run = KsmRunMode.Merge;
        FullScans(_mergeHost, 1);
        if (ksm.Stats.PagesSharing != 0)
        {
            throw new InvalidOperationException($"the checksum scan merged: {ksm.Stats}");
        }
    }

    [Benchmark(Baseline = true, OperationsPerInvoke = MergePairs, Description = "merge scan per merged page, no secondary MMU")]
    [BenchmarkCategory("Merge")]
    public long MergePrimaryOnly() => MergeScan();

    [Benchmark(OperationsPerInvoke = MergePairs, Description = "merge scan per merged page, both pages' sptes zapped in TDP MMUs")]
    [BenchmarkCategory("Merge")]
    public long MergeWithSecondary() => MergeScan();

    /// <summary>Two processes (guests when <paramref name="secondary"/>) whose page i holds content i, all mergeable.</summary>
    private void SetupMerge(bool secondary)
    {
        var bytes = MergePairs * PageSize;
        _mergeHost = new Host(new HostOptions { Memory = new HostMemoryOptions { TotalBytes = (2 * bytes) + (64UL << 20) } });
        (HostProcess Mm, Hva Ram)[] processes;
        if (secondary)
        {
            _mergeVms = [new BenchVm(_mergeHost, bytes), new BenchVm(_mergeHost, bytes)];
            processes = [.. _mergeVms.Select(vm => (vm.Mm, vm.Ram))];
        }
        else
        {
            processes = [.. Enumerable.Range(0, 2).Select(_ => _mergeHost.CreateMm()).Select(mm => (mm, mm.Mmap(bytes, Protection.Read | Protection.Write)))];
        }

        var page = new byte[PageSize];
        foreach (var (mm, ram) in processes)
        {
            for (var i = 0; i < MergePairs; i++)
            {
                KsmBenchPages.Fill(page, i);
                mm.Write(ram + ((ulong)i * PageSize), page);
            }

            mm.Madvise(ram, bytes, Advice.Mergeable);
        }

        _mergeHost.Ksm.SmartScan = false;
        for (var round = 0; round < 3; round++)
        {
            // One invocation's work at a time (a warm-up with 60 of them would take too long): the JIT tiers the
            // scanner during the BenchmarkDotNet warm-up iterations as well.
            PrepareMerge();
            MergeScan();
            Thread.Sleep(250);
        }
    }

    private long MergeScan()
    {
        var ksm = _mergeHost!.Ksm;
        var zapsBefore = _mergeVms.Sum(vm => vm.Mmu.Stats.Zapped);
        FullScans(_mergeHost, 1);
        var sharing = ksm.Stats.PagesSharing;
        var zaps = _mergeVms.Sum(vm => vm.Mmu.Stats.Zapped) - zapsBefore;
        if (sharing != MergePairs || (_mergeVms.Length > 0 && zaps < 2 * MergePairs))
        {
            throw new InvalidOperationException($"pages_sharing {sharing} after the merge scan ({MergePairs} expected), {zaps} sptes zapped");
        }

        return sharing;
    }

    /// <summary>Steps until <c>full_scans</c> has grown by <paramref name="scans"/>.</summary>
    private static void FullScans(Host host, int scans)
    {
        var target = host.Ksm.Stats.FullScans + scans;
        while (host.Ksm.Stats.FullScans < target)
        {
            host.Ksm.Step(4096);
        }
    }
}
