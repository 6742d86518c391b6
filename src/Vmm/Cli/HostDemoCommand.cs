using System.CommandLine;
using Hypervisor.Vmm.Cli.Output;
using Hypervisor.Vmm.Demo;
using Microsoft.Extensions.Logging;

namespace Hypervisor.Vmm.Cli;

/// <summary>
/// <c>hv demo [--seed N] [--ranges N] [--plain]</c>, also <c>hv demo host</c> and its former name
/// <c>hv demo notifier</c>: runs <see cref="HostDemo"/>, prints it, and exits 1 if the host MM auditor
/// found the host inconsistent.
/// </summary>
internal static class HostDemoCommand
{
    /// <summary>Largest accepted <c>--ranges</c>.</summary>
    public const int MaxRanges = 64;

    /// <summary>The name of the subcommand; <see cref="Alias"/> is its former name.</summary>
    public const string Name = "host";

    /// <summary>The subcommand's alias, the demo's name before the host existed.</summary>
    public const string Alias = "notifier";

    /// <summary>The description of <c>hv demo</c>: one sentence, as command lists show it.</summary>
    public const string Description =
        "Run the host memory manager (the real primary MMU model) through a scripted scenario and show the "
        + "MMU-notifier calls it issues, in Linux's order.";

    /// <summary>The description of <c>hv demo host</c>.</summary>
    public const string SubcommandDescription = "The same run as 'hv demo' ('notifier' is its former name).";

    /// <summary>What the demo does in detail, printed at the end of the help of <c>hv demo</c> and <c>hv demo host</c>.</summary>
    public static readonly string Details = string.Join(
        Environment.NewLine,
        "Scenario (each step is a mark in the timeline):",
        "  mmap 64 pages read-write; write a pattern into pages 0-59 (demand-zero faults); read page 60",
        "  (zero page); mprotect pages 8-15 read-only; munmap pages 20-23; MADV_DONTNEED pages 32-35;",
        "  MADV_FREE pages 36-39; mremap pages 48-55 to 72-79; fork, then write page 30 in the parent (a",
        "  copy-on-write break; the child still reads the old data); page aging (played by the script: the",
        "  host has no reclaim yet); --ranges random operations from --seed; the OOM reaper's non-blockable",
        "  start (played by the script: the host has no reaper yet), which a sleeping subscriber refuses;",
        "  exit of the child; exit (release first, then the final unmap only the interval subscriber sees).",
        string.Empty,
        "Output:",
        "  the timeline of every callback the subscribers (a recorder, also an interval subscriber; a user",
        "  event channel; a driver that must sleep) received between the host's own PTE changes, TLB flushes",
        "  and frame frees, in the order of reference/mmu-notifier.md section 3; the user channel's reads;",
        "  the chain's, process's and host's counters; the verdict of the host MM auditor, run after every",
        "  step. The same seed prints the same run.",
        string.Empty,
        "Exit code 1 if the auditor finds the host inconsistent.");

    /// <summary>Adds the demo's options and action to <paramref name="command"/> (<c>demo</c> itself runs it).</summary>
    public static void Configure(Command command, CliContext context, Option<LogLevel> logLevel)
    {
        ArgumentNullException.ThrowIfNull(command);
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(logLevel);
        var seed = CliOptions.BoundedInt(
            "--seed", "Seed of the random operations; the same seed prints the same run.", defaultValue: 1, min: 0, max: int.MaxValue);
        var ranges = CliOptions.BoundedInt(
            "--ranges",
            "How many random host operations (madvise, mprotect, write, munmap on random ranges of the mapping) to add to the script.",
            defaultValue: 3,
            min: 0,
            max: MaxRanges);
        var plain = new Option<bool>("--plain")
        {
            Description = "Plain aligned text even on a terminal (always the case when output is redirected).",
        };

        command.Options.Add(seed);
        command.Options.Add(ranges);
        command.Options.Add(plain);
        var tracing = RunTraceOptions.AddTo(command);
        command.SetAction(parseResult =>
        {
            if (!tracing.TryOpenForDemo(parseResult, context, out var opened))
            {
                return ExitCodes.UsageError;
            }

            using var trace = opened;
            HostDemoResult result;
            using (var loggerFactory = CliLogging.CreateFactory(parseResult.GetValue(logLevel)))
            {
                result = HostDemo.Run(parseResult.GetValue(seed), parseResult.GetValue(ranges), loggerFactory, trace?.Recorder);
            }

            trace?.WriteFor(context, "hv demo host");

            return Report(result, context, parseResult.GetValue(plain));
        });
    }

    /// <summary>Creates <c>demo host</c> (alias <c>demo notifier</c>).</summary>
    public static Command Create(CliContext context, Option<LogLevel> logLevel)
    {
        var command = new Command(Name, SubcommandDescription);
        command.Aliases.Add(Alias);
        Configure(command, context, logLevel);
        return command;
    }

    /// <summary>
    /// Prints <paramref name="result"/> and returns the exit code: success when the host stayed consistent,
    /// otherwise one internal-error line on standard error and <see cref="ExitCodes.InternalError"/>: a violation of the
    /// host MM's invariants is a bug in the simulator, not bad input.
    /// </summary>
    internal static int Report(HostDemoResult result, CliContext context, bool plain)
    {
        HostDemoReport.Write(result, ReportWriter.Create(context, plain));
        if (result.IsConsistent)
        {
            return ExitCodes.Success;
        }

        context.Error.WriteLine(
            $"{CliErrorHandler.InternalPrefix}the host MM auditor found {result.ViolationCount} violation(s) after {result.AuditFindings.Count} step(s); they are listed under '{HostDemoReport.AuditorSection}'");
        return ExitCodes.InternalError;
    }
}
