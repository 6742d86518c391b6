using System.CommandLine;
using Hypervisor.Vmm.Cli.Output;
using Hypervisor.Vmm.Demo;
using Microsoft.Extensions.Logging;

namespace Hypervisor.Vmm.Cli;

/// <summary><c>hv demo notifier [--seed N] [--ranges N] [--plain]</c>: runs <see cref="NotifierDemo"/> and prints it.</summary>
internal static class NotifierDemoCommand
{
    /// <summary>Largest accepted <c>--ranges</c>.</summary>
    public const int MaxRanges = 64;

    /// <summary>Creates the command.</summary>
    public static Command Create(CliContext context, Option<LogLevel> logLevel)
    {
        var seed = CliOptions.BoundedInt(
            "--seed", "Seed of the random ranges; the same seed prints the same run.", defaultValue: 1, min: 0, max: int.MaxValue);
        var ranges = CliOptions.BoundedInt(
            "--ranges", "How many random invalidations to add to the script.", defaultValue: 3, min: 0, max: MaxRanges);
        var plain = new Option<bool>("--plain")
        {
            Description = "Plain aligned text even on a terminal (always the case when output is redirected).",
        };

        var command = new Command(
            "notifier",
            "Show the MMU-notifier contract at work on a simulated host process: every callback each secondary MMU "
            + "receives, in order, between the host's own steps, then the user channel's events and the chain's counters.");
        command.Options.Add(seed);
        command.Options.Add(ranges);
        command.Options.Add(plain);
        command.SetAction(parseResult =>
        {
            NotifierDemoResult result;
            using (var loggerFactory = CliLogging.CreateFactory(parseResult.GetValue(logLevel)))
            {
                result = NotifierDemo.Run(parseResult.GetValue(seed), parseResult.GetValue(ranges), loggerFactory);
            }

            NotifierDemoReport.Write(result, ReportWriter.Create(context, parseResult.GetValue(plain)));
            return ExitCodes.Success;
        });
        return command;
    }
}
