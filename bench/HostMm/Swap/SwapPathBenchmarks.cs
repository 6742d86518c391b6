using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Configs;
using Hypervisor.GuestMmu.Addresses;
using Hypervisor.GuestMmu.Mmu;
using Hypervisor.HostMm;
using Hypervisor.Vmm.Bench;
using Microsoft.Win32.SafeHandles;

namespace Hypervisor.Bench.HostMm.Swap;

/// <summary>
/// Swap per page end to end on the file device, beside plain file I/O of the same pages in the same run (the
/// baseline of each category; Ratio = swap path / plain file). 64 MiB (16 384 pages) of memtest-like guest memory
/// per invocation, one invocation per iteration and 15 iterations whatever the job (the attributes are job mutators,
/// so they apply to <c>--job short</c> too): with 4096 pages and 3 iterations two runs of the same code differed by
/// 2× in the swap rows' ratios. Means are per page; the Min and Median columns are the figures to compare on a loaded
/// machine (an iteration another process slowed only raises the mean). Targets (issue 11): swap-out ≤ 1.5 µs and
/// swap-in ≤ 5 µs per page, each within 1.5× of plain file I/O.
/// </summary>
/// <remarks>
/// <para>Swap-out: <c>madvise(MADV_PAGEOUT)</c> over resident dirty pages: per page, isolation, a slot, the swap
/// cache, <c>try_to_unmap_one</c> in §3's order (notifier start — which zaps the spte when
/// <see cref="ThroughEpt"/> — swap PTE, TLB flush, end), the CRC-32C, the gathered write (one per run of contiguous
/// slots, 32 pages: reclaim's batch; on Linux one <c>pwritev</c> straight from the frames), the free, all on the
/// calling thread (the default; <see cref="SwapWritebackBenchmarks"/> compares the asynchronous writeback). Baseline: one
/// <see cref="RandomAccess.Write(SafeFileHandle, ReadOnlySpan{byte}, long)"/> per 32 pages of one contiguous buffer,
/// as many system calls as the swap path makes; a second row writes one page per call.</para>
/// <para>Swap-in: a sequential read fault per page (through the EPT fault path and get-user-pages when
/// <see cref="ThroughEpt"/>, else the host's own fault): a major fault reads the readahead window (page-cluster 3,
/// up to 8 pages; on Linux one <c>preadv</c> straight into the new frames) with CRC checks, the next pages hit the
/// swap cache. Baseline: plain reads of the same pages in 8-page calls (the readahead window) into one contiguous
/// buffer; a second row reads them one page per call.</para>
/// <para>Both files live in the temp folder; the OS page cache serves both sides alike.</para>
/// </remarks>
[GroupBenchmarksBy(BenchmarkLogicalGroupRule.ByCategory, BenchmarkLogicalGroupRule.ByParams)]
[CategoriesColumn]
[MinColumn]
[MedianColumn]
[WarmupCount(2)]
[IterationCount(15)]
public class SwapPathBenchmarks
{
    private const int Pages = 16384;

    /// <summary>The pages reclaim writes per device call (its batch, 32 pages, whose slots come from one cluster).</summary>
    private const int WriteRunPages = 32;
    private const int PageSize = SwapBenchPages.PageSize;
    private const ulong Bytes = (ulong)Pages * PageSize;

    private SwapBenchRig _rig = null!;
    private byte[] _data = null!;
    private byte[] _read = null!;

    /// <summary>True: the guest's EPT maps the pages, so swap-out zaps sptes and swap-in runs the EPT fault path.</summary>
    [Params(false, true)]
    public bool ThroughEpt { get; set; }

    [GlobalSetup]
    public void GlobalSetup()
    {
        _data = SwapBenchPages.Make(SwapBenchData.Memtest, Pages);
        _read = new byte[_data.Length];
        _rig = new SwapBenchRig(Bytes, "swap-path-bench");
        PlainWrite();

        // Both paths once through, so the measured iterations run optimised code.
        TieringWarmupRound();
    }

    [GlobalCleanup]
    public void GlobalCleanup()
    {
        _rig.Dispose();
    }

    /// <summary>The plain rows run one invocation per iteration too, so they share a job (and a Ratio) with the swap rows.</summary>
    [IterationSetup(Targets = [nameof(PlainWrite), nameof(PlainWrite1), nameof(PlainRead8), nameof(PlainRead1)])]
    public void NothingToPrepare()
    {
    }

    [IterationSetup(Target = nameof(SwapOut))]
    public void MakeResidentAndDirty()
    {
        // Swaps back in whatever the last iteration left on swap, and dirties every page (a swap-cache copy is dropped).
        _rig.Vm.Mm.Write(_rig.Vm.Ram, _data);
        if (ThroughEpt)
        {
            for (ulong page = 0; page < Pages; page++)
            {
                _rig.Vm.Mmu.HandleEptViolation(new Gfn(page).ToGpa(), EptAccess.Write);
            }
        }
    }

    [IterationSetup(Target = nameof(SwapIn))]
    public void PageEverythingOut()
    {
        MakeResidentAndDirty();
        SwapOut();
    }

    [Benchmark(OperationsPerInvoke = Pages, Description = "swap-out: madvise(PAGEOUT) of dirty pages")]
    [BenchmarkCategory("swap-out")]
    public void SwapOut()
    {
        var before = _rig.Host.Reclaim.Stats.Pswpout;
        var callsBefore = _rig.Host.Reclaim.Area!.Device.GetStats().WriteCalls;
        _rig.Vm.Mm.Madvise(_rig.Vm.Ram, Bytes, Advice.PageOut);
        var written = _rig.Host.Reclaim.Stats.Pswpout - before;
        var calls = _rig.Host.Reclaim.Area.Device.GetStats().WriteCalls - callsBefore;
        if (written != Pages || calls > Pages / 8)
        {
            throw new InvalidOperationException($"PAGEOUT wrote {written} pages in {calls} device calls, expected {Pages} in runs of up to {WriteRunPages}");
        }
    }

    [Benchmark(Baseline = true, OperationsPerInvoke = Pages, Description = "plain file: RandomAccess.Write, 32 pages per call")]
    [BenchmarkCategory("swap-out")]
    public void PlainWrite() => PlainWriteRuns(WriteRunPages);

    [Benchmark(OperationsPerInvoke = Pages, Description = "plain file: RandomAccess.Write, 1 page per call")]
    [BenchmarkCategory("swap-out")]
    public void PlainWrite1() => PlainWriteRuns(1);

    private void PlainWriteRuns(int pagesPerCall)
    {
        for (var i = 0; i < Pages; i += pagesPerCall)
        {
            RandomAccess.Write(_rig.Plain, _data.AsSpan(i * PageSize, pagesPerCall * PageSize), (long)(1 + i) * PageSize);
        }
    }

    [Benchmark(OperationsPerInvoke = Pages, Description = "swap-in: sequential read faults, readahead")]
    [BenchmarkCategory("swap-in")]
    public void SwapIn()
    {
        long major = 0;
        for (ulong page = 0; page < Pages; page++)
        {
            if (ThroughEpt)
            {
                var result = _rig.Vm.Mmu.HandleEptViolation(new Gfn(page).ToGpa(), EptAccess.Read);
                if (result.Outcome != EptFaultOutcome.Installed)
                {
                    throw new InvalidOperationException($"EPT fault on page {page}: {result.Outcome} {result.Detail}");
                }
            }
            else
            {
                var result = _rig.Vm.Mm.HandleFault(_rig.Vm.Ram + (page * (ulong)PageSize), FaultAccess.Read);
                if (result is not (FaultResult.SwapIn or FaultResult.SwapCacheHit))
                {
                    throw new InvalidOperationException($"fault on page {page}: {result}");
                }

                major += result == FaultResult.SwapIn ? 1 : 0;
            }
        }

        if (!ThroughEpt && major > Pages / 4)
        {
            throw new InvalidOperationException($"{major} major faults for {Pages} sequential pages: readahead did not work");
        }
    }

    [Benchmark(Baseline = true, OperationsPerInvoke = Pages, Description = "plain file: RandomAccess.Read, 8 pages per call")]
    [BenchmarkCategory("swap-in")]
    public void PlainRead8() => PlainRead(8);

    [Benchmark(OperationsPerInvoke = Pages, Description = "plain file: RandomAccess.Read, 1 page per call")]
    [BenchmarkCategory("swap-in")]
    public void PlainRead1() => PlainRead(1);

    private void PlainRead(int pagesPerCall)
    {
        for (var i = 0; i < Pages; i += pagesPerCall)
        {
            RandomAccess.Read(_rig.Plain, _read.AsSpan(i * PageSize, pagesPerCall * PageSize), (long)(1 + i) * PageSize);
        }
    }

    private void TieringWarmupRound()
    {
        for (var round = 0; round < 3; round++)
        {
            PageEverythingOut();
            SwapIn();
            PlainRead8();
            PlainRead1();
            PlainWrite();
            PlainWrite1();
            Thread.Sleep(250);
        }
    }
}
