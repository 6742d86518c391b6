using System.CommandLine;
using System.Globalization;
using Hypervisor.GuestMmu.Ept;
using Hypervisor.HostMm.Swap;
using Hypervisor.Vmm.Bench;
using Hypervisor.Vmm.Cli.Output;

namespace Hypervisor.Vmm.Cli;

/// <summary>
/// <c>hv bench zap|age|fault|tlb|swap-out|swap-in</c>: quick throughput figures of the secondary MMU and the swap paths,
/// each beside its same-run baseline where one exists (memset or scan of the same table bytes, plain file I/O of the same
/// pages). BenchmarkDotNet in <c>bench/</c> gives the rigorous numbers.
/// </summary>
internal static class BenchCommand
{
    private enum SwapThrough
    {
        Host,
        Ept,
    }

    private enum SwapIo
    {
        Buffered,
        Direct,
    }

    private enum Writeback
    {
        Sync,
        Async,
    }

    private enum VectorPath
    {
        Auto,
        Scalar,
        Vector128,
        Vector256,
        Vector512,
    }

    /// <summary>Creates <c>bench</c> with its subcommands (zap, age, fault, tlb, swap-out, swap-in).</summary>
    public static Command Create(CliContext context)
    {
        var bench = new Command("bench", "Quick throughput figures of the secondary MMU (zap, age, fault-in, TLB) and the swap paths (swap-out, swap-in).");
        bench.Subcommands.Add(Sub(context, "zap", "Zap a fully populated range of 4 KiB sptes; baseline: memset of the same table bytes.", withDirty: true, withPath: true,
            (size, dirty, path, repeat) => QuickBench.Zap(size, dirty, path, repeat)));
        bench.Subcommands.Add(Sub(context, "age", "Age (test and clear accessed) a fully populated, all-young range; baseline: a scan of the same table bytes.", withDirty: false, withPath: true,
            (size, _, path, repeat) => QuickBench.Age(size, path, repeat)));
        bench.Subcommands.Add(Sub(context, "fault", "EPT violations over fresh guest memory, including the host's demand-zero fault.", withDirty: false, withPath: false,
            (size, _, _, repeat) => QuickBench.Fault(size, repeat)));
        bench.Subcommands.Add(Sub(context, "tlb", "Soft-TLB hits of a vCPU (paging off); baseline: the same translations as misses, each a walk through EPT.", withDirty: false, withPath: false,
            (size, _, _, repeat) => QuickBench.Tlb(size, repeat)));
        bench.Subcommands.Add(SwapSub(context, "swap-out", "MADV_PAGEOUT of resident dirty pages to a swap file, per page; baseline: plain 32-page writes of the same pages, timed right after each repetition.",
            (size, ept, repeat, direct, asyncWriteback) => QuickBench.SwapOut(size, ept, repeat, direct, asyncWriteback), withWriteback: true));
        bench.Subcommands.Add(SwapSub(context, "swap-in", "Sequential read faults over paged-out memory (readahead, checksums), per page; baseline: plain 8-page reads of the same pages, timed right after each repetition.",
            (size, ept, repeat, direct, _) => QuickBench.SwapIn(size, ept, repeat, direct), withWriteback: false));
        return bench;
    }

    private static Command SwapSub(CliContext context, string name, string description, Func<ulong, bool, int, bool, bool, QuickBenchResult> run, bool withWriteback)
    {
        var command = new Command(name, description);
        var size = CliOptions.Size("--size", null, "Guest memory swapped (a multiple of 128K: 32-page runs)", 64UL << 20, 128UL << 10, 1UL << 30);
        var repeat = CliOptions.BoundedInt("--repeat", "Timed repetitions (after three untimed ones); the best and the median of the paired ratios are reported.", 7, 1, 100);
        var through = CliOptions.Enum("--through", "host: the host's own faults and unmaps; ept: every page mapped by an spte (unmapping zaps it) and faulted in through the EPT fault path and get-user-pages.", SwapThrough.Host);
        var io = CliOptions.Enum("--io", "buffered: the swap file and the plain file through the OS page cache (the copy is the cost); direct: both with O_DIRECT, past the page cache, as Linux's swap I/O goes to the device (the disk is the cost; Linux only).", SwapIo.Buffered);
        var plain = new Option<bool>("--plain") { Description = "Plain text even on a terminal." };
        command.Options.Add(size);
        command.Options.Add(repeat);
        command.Options.Add(through);
        command.Options.Add(io);
        var writeback = CliOptions.Enum("--writeback", "sync: each 32-page run is checksummed, written and freed on the calling thread before the next batch (the default); async: an I/O thread does that while the caller isolates and unmaps the next batches, as Linux's pageout submits and goes on (MADV_PAGEOUT still returns only when every write is done).", Writeback.Sync);
        if (withWriteback)
        {
            command.Options.Add(writeback);
        }

        command.Options.Add(plain);
        command.SetAction(parseResult =>
        {
            var bytes = parseResult.GetValue(size).Bytes;
            if (bytes % (128UL << 10) != 0)
            {
                context.Error.WriteLine($"{CliErrorHandler.Prefix}--size for {name} must be a multiple of 128K (the swap runs are 32 pages), got {ByteSize.Format(bytes)} (see 'hv bench {name} --help')");
                return ExitCodes.UsageError;
            }

            var direct = parseResult.GetValue(io) == SwapIo.Direct;
            var asyncWriteback = withWriteback && parseResult.GetValue(writeback) == Writeback.Async;
            QuickBenchResult result;
            try
            {
                result = run(bytes, parseResult.GetValue(through) == SwapThrough.Ept, parseResult.GetValue(repeat), direct, asyncWriteback);
            }
            catch (SwapConfigurationException ex)
            {
                context.Error.WriteLine($"{CliErrorHandler.Prefix}{name} --io {(direct ? "direct" : "buffered")}: {RunHostMemoryOptions.WithoutParameter(ex)}");
                return ExitCodes.UsageError;
            }

            Write(result, ReportWriter.Create(context, parseResult.GetValue(plain)));
            context.Report?.AddCounters(Counters(result));
            context.Report?.AddCounters([new ReportCounter("direct_io", direct ? 1 : 0)]);
            if (withWriteback)
            {
                context.Report?.AddCounters([new ReportCounter("async_writeback", asyncWriteback ? 1 : 0)]);
            }

            return ExitCodes.Success;
        });
        return command;
    }

    private static Command Sub(CliContext context, string name, string description, bool withDirty, bool withPath, Func<ulong, bool, EptVectorWidth?, int, QuickBenchResult> run)
    {
        var command = new Command(name, description);
        var size = CliOptions.Size("--size", null, "Guest memory covered", name switch { "fault" => 256UL << 20, "tlb" => 1UL << 20, _ => 1UL << 30 }, 4UL << 10, 64UL << 30);
        var repeat = CliOptions.BoundedInt("--repeat", "Timed repetitions; the best is reported.", 5, 1, 100);
        var plain = new Option<bool>("--plain") { Description = "Plain text even on a terminal." };
        var dirty = new Option<bool>("--dirty") { Description = "Every spte dirty (the dirty bit moves to the host frame on zap)." };
        var path = CliOptions.Enum("--path", "Vector width for bulk spte work (auto: the widest this CPU has).", VectorPath.Auto);
        command.Options.Add(size);
        command.Options.Add(repeat);
        command.Options.Add(plain);
        if (withDirty)
        {
            command.Options.Add(dirty);
        }

        if (withPath)
        {
            command.Options.Add(path);
        }

        command.SetAction(parseResult =>
        {
            var width = parseResult.GetValue(path) switch
            {
                VectorPath.Scalar => EptVectorWidth.Scalar,
                VectorPath.Vector128 => EptVectorWidth.Vector128,
                VectorPath.Vector256 => EptVectorWidth.Vector256,
                VectorPath.Vector512 => EptVectorWidth.Vector512,
                _ => (EptVectorWidth?)null,
            };
            var result = run(parseResult.GetValue(size).Bytes, withDirty && parseResult.GetValue(dirty), width, parseResult.GetValue(repeat));
            Write(result, ReportWriter.Create(context, parseResult.GetValue(plain)));
            context.Report?.AddCounters(Counters(result));
            return ExitCodes.Success;
        });
        return command;
    }

    private static void Write(QuickBenchResult result, ReportWriter writer)
    {
        writer.Title($"hv bench: {result.Name}");
        var table = new ReportTable(new ReportColumn("measure"), new ReportColumn("ns per item", AlignRight: true), new ReportColumn("items per second", AlignRight: true));
        table.AddEmphasisedRow(result.Name, Format(result.NanosecondsPerItem), result.ItemsPerSecond.ToString("0.00e0", CultureInfo.InvariantCulture));
        if (result.BaselineName is not null)
        {
            table.AddRow(result.BaselineName, Format(result.BaselineNanosecondsPerItem), (1e9 / result.BaselineNanosecondsPerItem).ToString("0.00e0", CultureInfo.InvariantCulture));
        }

        writer.Table(table);
        var lines = new List<string>
        {
            result.Calls > 1
                ? $"{result.Items:#,0} items per call, {result.Calls:#,0} consecutive calls per repetition (timed together: one call alone is too short for the clock); the best repetition is shown."
                : $"{result.Items:#,0} items per repetition; the best repetition is shown.",
        };
        if (result.BaselineName is not null)
        {
            lines.Add($"ratio to the baseline: {result.RatioToBaseline.ToString("0.00", CultureInfo.InvariantCulture)}x");
        }

        if (!double.IsNaN(result.PairedRatio))
        {
            lines.Add($"median of the repetitions' paired ratios: {result.PairedRatio.ToString("0.00", CultureInfo.InvariantCulture)}x (each repetition times both back to back; steadier than the ratio of the bests when the baseline moves between runs)");
        }

        writer.Paragraph([.. lines]);
    }

    /// <summary>The figures of <c>--json</c>: the measure's and (when there is one) its baseline's.</summary>
    private static IEnumerable<ReportCounter> Counters(QuickBenchResult result)
    {
        yield return new("ns_per_item", result.NanosecondsPerItem);
        yield return new("items_per_second", result.ItemsPerSecond);
        yield return new("items", result.Items);
        yield return new("calls", result.Calls);
        if (result.BaselineName is not null)
        {
            yield return new("baseline_ns_per_item", result.BaselineNanosecondsPerItem);
            yield return new("ratio_to_baseline", result.RatioToBaseline);
        }

        if (!double.IsNaN(result.PairedRatio))
        {
            yield return new("paired_ratio", result.PairedRatio);
        }
    }

    private static string Format(double nanoseconds) => nanoseconds.ToString(nanoseconds < 10 ? "0.000" : "0.0", CultureInfo.InvariantCulture);
}
