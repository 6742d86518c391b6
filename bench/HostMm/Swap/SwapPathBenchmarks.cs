using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Configs;
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
/// <para>Both files live in the temp folder; buffered, the OS page cache serves both sides alike; with
/// <see cref="DirectIo"/> both are opened with <c>O_DIRECT</c> (the swap file as <c>--swap-io direct</c>), so both
/// sides pay the disk, and every buffer is page-aligned native memory (the rig's).</para>
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
    private const ulong Bytes = (ulong)Pages * SwapBenchPages.PageSize;

    private SwapBenchRig _rig = null!;

    /// <summary>True: the guest's EPT maps the pages, so swap-out zaps sptes and swap-in runs the EPT fault path.</summary>
    [Params(false, true)]
    public bool ThroughEpt { get; set; }

    /// <summary>True: the swap file and the plain file both with <c>O_DIRECT</c>, past the OS page cache.</summary>
    [Params(false, true)]
    public bool DirectIo { get; set; }

    [GlobalSetup]
    public void GlobalSetup()
    {
        _rig = new SwapBenchRig(Bytes, "swap-path-bench", directIo: DirectIo);
        SwapBenchPages.Make(SwapBenchData.Memtest, Pages).CopyTo(_rig.Data);
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
    public void MakeResidentAndDirty() => _rig.MakeResidentAndDirty(_rig.Data, ThroughEpt);

    [IterationSetup(Target = nameof(SwapIn))]
    public void PageEverythingOut()
    {
        MakeResidentAndDirty();
        SwapOut();
    }

    [Benchmark(OperationsPerInvoke = Pages, Description = "swap-out: madvise(PAGEOUT) of dirty pages")]
    [BenchmarkCategory("swap-out")]
    public void SwapOut() => _rig.PageOut();

    [Benchmark(Baseline = true, OperationsPerInvoke = Pages, Description = "plain file: RandomAccess.Write, 32 pages per call")]
    [BenchmarkCategory("swap-out")]
    public void PlainWrite() => _rig.PlainWrite(_rig.Data, WriteRunPages);

    [Benchmark(OperationsPerInvoke = Pages, Description = "plain file: RandomAccess.Write, 1 page per call")]
    [BenchmarkCategory("swap-out")]
    public void PlainWrite1() => _rig.PlainWrite(_rig.Data, 1);

    [Benchmark(OperationsPerInvoke = Pages, Description = "swap-in: sequential read faults, readahead")]
    [BenchmarkCategory("swap-in")]
    public void SwapIn()
    {
        var major = _rig.FaultIn(ThroughEpt);
        if (!ThroughEpt && major > Pages / 4)
        {
            throw new InvalidOperationException($"{major} major faults for {Pages} sequential pages: readahead did not work");
        }
    }

    [Benchmark(Baseline = true, OperationsPerInvoke = Pages, Description = "plain file: RandomAccess.Read, 8 pages per call")]
    [BenchmarkCategory("swap-in")]
    public void PlainRead8() => _rig.PlainRead(_rig.ReadBack, 8);

    [Benchmark(OperationsPerInvoke = Pages, Description = "plain file: RandomAccess.Read, 1 page per call")]
    [BenchmarkCategory("swap-in")]
    public void PlainRead1() => _rig.PlainRead(_rig.ReadBack, 1);

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
