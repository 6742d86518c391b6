using System.Diagnostics;
using System.Runtime.InteropServices;
using Hypervisor.HostMm.Reclaim;

namespace Hypervisor.Vmm.Bench;

/// <summary><c>hv bench swap-out|swap-in</c>: the file swap device's paths per page beside plain file I/O of the same pages.</summary>
public static partial class QuickBench
{
    /// <summary>Pages reclaim writes per device call (one batch of contiguous slots), and the plain baseline's writes.</summary>
    private const int SwapWriteRunPages = 32;

    /// <summary>Pages of swap-in's full readahead window (page-cluster 3), and the plain baseline's reads.</summary>
    private const int SwapReadRunPages = 8;

    /// <summary>
    /// Swap-out per page: <c>madvise(MADV_PAGEOUT)</c> of <paramref name="bytes"/> of resident, dirty guest memory on the
    /// file device (unmap in <c>try_to_unmap_one</c>'s order, 32-page writes, checksums, frees), through the EPT (each
    /// page mapped by an spte, so every unmap zaps) or host-only; baseline: plain 32-page file writes of the same pages,
    /// timed right after in each repetition. <paramref name="directIo"/>: both files with O_DIRECT;
    /// <paramref name="asyncWriteback"/>: the runs are written by the writeback I/O thread (<see cref="ReclaimOptions.AsyncWriteback"/>).
    /// </summary>
    /// <exception cref="InvalidOperationException">The pageout did not write every page in runs (the measurement would be of something else).</exception>
    public static QuickBenchResult SwapOut(ulong bytes, bool throughEpt, int repetitions, bool directIo = false, bool asyncWriteback = false)
    {
        var pages = CheckSwapSize(bytes);
        using var rig = new SwapBenchRig(bytes, "hv-bench-swap-out", new ReclaimOptions { AsyncWriteback = asyncWriteback }, directIo);
        FillSwapPattern(rig.Data);
        var timings = RepeatPaired(
            repetitions,
            prepare: () => rig.MakeResidentAndDirty(rig.Data, throughEpt),
            operation: rig.PageOut,
            baseline: () => rig.PlainWrite(rig.Data, SwapWriteRunPages));
        return SwapResult($"swap-out {FormatSize(bytes)} {Through(throughEpt)}{Io(directIo)}{(asyncWriteback ? ", async writeback" : string.Empty)}", pages, timings, $"plain file{Io(directIo)}: {SwapWriteRunPages}-page writes of the same pages");
    }

    /// <summary>
    /// Swap-in per page: sequential read faults over <paramref name="bytes"/> of guest memory that was just paged out
    /// (a major fault reads each readahead window in one vectored read with its checksums, the window's other pages
    /// hit the swap cache), through the EPT fault path and get-user-pages or as the host's own faults; baseline: plain
    /// 8-page file reads of the same pages, timed right after in each repetition.
    /// </summary>
    /// <exception cref="InvalidOperationException">A fault did not swap its page in.</exception>
    public static QuickBenchResult SwapIn(ulong bytes, bool throughEpt, int repetitions, bool directIo = false)
    {
        var pages = CheckSwapSize(bytes);
        using var rig = new SwapBenchRig(bytes, "hv-bench-swap-in", directIo: directIo);
        FillSwapPattern(rig.Data);
        rig.PlainWrite(rig.Data, SwapWriteRunPages); // the baseline reads the same bytes the swap path does
        var timings = RepeatPaired(
            repetitions,
            prepare: () =>
            {
                rig.MakeResidentAndDirty(rig.Data, throughEpt);
                rig.PageOut();
            },
            operation: () => rig.FaultIn(throughEpt),
            baseline: () => rig.PlainRead(rig.ReadBack, SwapReadRunPages));
        return SwapResult($"swap-in {FormatSize(bytes)} {Through(throughEpt)}{Io(directIo)}", pages, timings, $"plain file{Io(directIo)}: {SwapReadRunPages}-page reads of the same pages");
    }

    private static string Through(bool throughEpt) => throughEpt ? "through the EPT" : "host-only";

    private static string Io(bool directIo) => directIo ? ", O_DIRECT" : string.Empty;

    /// <summary>
    /// Three untimed rounds first, each followed by a pause for the runtime's background compiler (as
    /// <see cref="TieringWarmup"/>: the timed rounds then run optimised code), then <paramref name="repetitions"/> rounds of
    /// prepare, the timed operation and the timed baseline; returns each round's two costs in nanoseconds.
    /// </summary>
    private static (double Operation, double Baseline)[] RepeatPaired(int repetitions, Action prepare, Action operation, Action baseline)
    {
        const int warmupRounds = 3;
        var timings = new (double, double)[repetitions];
        for (var round = -warmupRounds; round < repetitions; round++)
        {
            prepare();
            var watch = Stopwatch.StartNew();
            operation();
            var operationNs = watch.Elapsed.TotalNanoseconds;
            watch.Restart();
            baseline();
            var baselineNs = watch.Elapsed.TotalNanoseconds;
            if (round >= 0)
            {
                timings[round] = (operationNs, baselineNs);
            }
            else
            {
                Thread.Sleep(250);
            }
        }

        return timings;
    }

    private static QuickBenchResult SwapResult(string name, int pages, (double Operation, double Baseline)[] timings, string baselineName)
    {
        var ratios = timings.Select(t => t.Operation / t.Baseline).Order().ToArray();
        var median = ratios.Length % 2 == 1 ? ratios[ratios.Length / 2] : (ratios[(ratios.Length / 2) - 1] + ratios[ratios.Length / 2]) / 2;
        return new QuickBenchResult(
            name,
            pages,
            timings.Min(t => t.Operation) / pages,
            baselineName,
            timings.Min(t => t.Baseline) / pages,
            PairedRatio: median);
    }

    private static int CheckSwapSize(ulong bytes)
    {
        var pages = CheckSize(bytes);
        if (pages % SwapWriteRunPages != 0)
        {
            throw new ArgumentException($"size {bytes} is not a multiple of {SwapWriteRunPages} pages (the swap runs' length)");
        }

        return checked((int)pages);
    }

    /// <summary>Pseudo-random 64-bit words, as memtest writes: no page is zero-filled (those are not written to swap) and none compresses.</summary>
    private static void FillSwapPattern(Span<byte> data)
    {
        var random = new Random(1);
        var words = MemoryMarshal.Cast<byte, ulong>(data);
        for (var i = 0; i < words.Length; i++)
        {
            words[i] = (ulong)random.NextInt64();
        }
    }
}
