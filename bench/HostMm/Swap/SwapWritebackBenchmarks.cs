using BenchmarkDotNet.Attributes;
using Hypervisor.HostMm.Reclaim;
using Hypervisor.Vmm.Bench;

namespace Hypervisor.Bench.HostMm.Swap;

/// <summary>
/// Swap-out per page with the writes on the calling thread and on the writeback I/O thread
/// (<see cref="ReclaimOptions.AsyncWriteback"/>), beside plain 32-page file writes of the same pages in the same run
/// (Ratio = swap-out / plain). As <see cref="SwapPathBenchmarks"/>' swap-out row, host-only: <c>madvise(MADV_PAGEOUT)</c>
/// of 64 MiB of dirty memtest-like pages, which returns only when every write has completed.
/// </summary>
/// <remarks>
/// Asynchronous, the calling thread isolates and unmaps batch k+1 while the I/O thread checksums, writes and frees
/// batch k: it gains only where the second core is free. On the 2-core development machine shared with other builds
/// it was not (see the README's swap rows).
/// </remarks>
[MinColumn]
[MedianColumn]
[WarmupCount(2)]
[IterationCount(15)]
public class SwapWritebackBenchmarks
{
    private const int Pages = 16384;
    private const int WriteRunPages = 32;
    private const ulong Bytes = (ulong)Pages * SwapBenchPages.PageSize;

    private SwapBenchRig _rig = null!;

    /// <summary>True: the writes go to the writeback I/O thread.</summary>
    [Params(false, true)]
    public bool AsyncWriteback { get; set; }

    /// <summary>True: the swap file and the plain file both with <c>O_DIRECT</c>, so the writes wait for the disk.</summary>
    [Params(false, true)]
    public bool DirectIo { get; set; }

    [GlobalSetup]
    public void GlobalSetup()
    {
        _rig = new SwapBenchRig(Bytes, "swap-writeback-bench", new ReclaimOptions { AsyncWriteback = AsyncWriteback }, DirectIo);
        SwapBenchPages.Make(SwapBenchData.Memtest, Pages).CopyTo(_rig.Data);
        // As SwapPathBenchmarks: each untimed round is followed by a pause for the runtime's background compiler, so the
        // measured iterations run optimised code (without it the synchronous row measured ~1.7 µs against ~1.3 there).
        for (var round = 0; round < 3; round++)
        {
            MakeResidentAndDirty();
            SwapOut();
            PlainWrite();
            Thread.Sleep(250);
        }
    }

    [GlobalCleanup]
    public void GlobalCleanup()
    {
        _rig.Dispose();
    }

    /// <summary>The plain row runs one invocation per iteration too, so it shares a job (and a Ratio) with the swap row.</summary>
    [IterationSetup(Target = nameof(PlainWrite))]
    public void NothingToPrepare()
    {
    }

    /// <summary>Swaps back in whatever the last iteration left on swap, and dirties every page.</summary>
    [IterationSetup(Target = nameof(SwapOut))]
    public void MakeResidentAndDirty() => _rig.MakeResidentAndDirty(_rig.Data, throughEpt: false);

    [Benchmark(OperationsPerInvoke = Pages, Description = "swap-out: madvise(PAGEOUT) of dirty pages")]
    public void SwapOut() => _rig.PageOut();

    [Benchmark(Baseline = true, OperationsPerInvoke = Pages, Description = "plain file: RandomAccess.Write, 32 pages per call")]
    public void PlainWrite() => _rig.PlainWrite(_rig.Data, WriteRunPages);
}
