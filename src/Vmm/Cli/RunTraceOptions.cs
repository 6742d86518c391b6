using System.CommandLine;
using System.Globalization;
using Hypervisor.Vmm.Accel;
using Hypervisor.Vmm.Tracing;

namespace Hypervisor.Vmm.Cli;

/// <summary>
/// The timeline options of <c>hv run</c> and the demos: <c>--trace FILE</c> (a Chrome trace-event JSON file of the
/// run, written once at its end) and <c>--trace-size N</c> (the ring's size in events; older events are dropped).
/// </summary>
internal sealed class RunTraceOptions
{
    private RunTraceOptions()
    {
        Trace = new Option<string?>("--trace")
        {
            Description = "Emulated only: write a timeline of the run to FILE in the Chrome trace-event format (open it in Perfetto or chrome://tracing): a track per vCPU and host thread, spans for EPT violations, notifier invalidations, zaps, TLB shootdowns, kswapd and ksmd batches, swap I/O, KSM merges, page migrations, huge page splits and collapses, host forks; counter tracks of resident, swapped and merged pages, present sptes, huge leaves, KSM sharing and migrations.",
            HelpName = "FILE",
        };
        TraceSize = CliOptions.BoundedInt(
            "--trace-size",
            "With --trace: how many events the trace keeps (a ring of 80 bytes an event, allocated as it fills: when it is full the oldest are dropped, and the file says how many).",
            TraceRecorder.DefaultCapacity,
            TraceRecorder.MinCapacity,
            TraceRecorder.MaxCapacity);
    }

    /// <summary><c>--trace</c>; null when absent.</summary>
    public Option<string?> Trace { get; }

    /// <summary><c>--trace-size</c>.</summary>
    public Option<int> TraceSize { get; }

    /// <summary>Every option, in help order.</summary>
    public IEnumerable<Option> All => [Trace, TraceSize];

    /// <summary>Creates the options and adds them to <paramref name="command"/> (a demo's).</summary>
    public static RunTraceOptions AddTo(Command command)
    {
        ArgumentNullException.ThrowIfNull(command);
        var options = new RunTraceOptions();
        foreach (var option in options.All)
        {
            command.Options.Add(option);
        }

        return options;
    }

    /// <summary>
    /// <see cref="TryOpen"/> for a demo (always emulated): false after writing the one error line to
    /// <paramref name="context"/>'s standard error, for the caller to exit with <see cref="ExitCodes.UsageError"/>.
    /// </summary>
    public bool TryOpenForDemo(ParseResult parseResult, CliContext context, out TraceSession? session)
    {
        ArgumentNullException.ThrowIfNull(context);
        if (TryOpen(parseResult, AcceleratorKind.Emulated, out session, out var error))
        {
            return true;
        }

        context.Error.WriteLine($"{CliErrorHandler.Prefix}{error}");
        return false;
    }

    /// <summary>Creates the options.</summary>
    public static RunTraceOptions Create() => new();

    /// <summary>
    /// Creates the trace file and its recorder when <c>--trace</c> is given (<paramref name="session"/> null when it is
    /// not). Returns false with one line naming the option when the file cannot be created, <c>--trace-size</c> comes
    /// without <c>--trace</c>, or the accelerator is not the emulated one.
    /// </summary>
    /// <param name="parseResult">The parsed command line.</param>
    /// <param name="accelerator">The run's accelerator.</param>
    /// <param name="session">The open trace, or null.</param>
    /// <param name="error">The error line (without the <c>hv: error:</c> prefix).</param>
    public bool TryOpen(ParseResult parseResult, AcceleratorKind accelerator, out TraceSession? session, out string? error)
    {
        session = null;
        error = null;
        var path = parseResult.GetValue(Trace);
        if (path is null)
        {
            if (parseResult.GetResult(TraceSize) is { Implicit: false })
            {
                error = "--trace-size needs --trace: without a trace file nothing is recorded";
                return false;
            }

            return true;
        }

        if (accelerator != AcceleratorKind.Emulated)
        {
            error = "--trace needs --accel emulated: KVM's secondary MMU is the kernel's, whose tracepoints are ftrace's";
            return false;
        }

        if (!TraceSession.TryCreate(path, parseResult.GetValue(TraceSize), out session, out var why))
        {
            error = string.Create(CultureInfo.InvariantCulture, $"--trace {path}: '{Path.GetFullPath(path.Length == 0 ? "." : path)}' cannot be created: {why}");
            return false;
        }

        return true;
    }
}
