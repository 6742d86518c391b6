using System.CommandLine;
using Hypervisor.Vmm.Cli.Output;
using Hypervisor.Vmm.Demo.History;

namespace Hypervisor.Vmm.Cli;

/// <summary>
/// <c>hv demo history [RACE...] [--plain]</c>: replays the notifier races behind the seeds' fixes
/// (<see cref="HistoryDemo"/>), all of them or those named, each in its era and today. Exit 0 when each era's run left a
/// stale mapping the auditor caught and each of today's runs was clean; 70 (an internal error) otherwise; 2 for an
/// unknown race name.
/// </summary>
internal static class HistoryDemoCommand
{
    /// <summary>The name of the subcommand.</summary>
    public const string Name = "history";

    /// <summary>What the demo does, as command lists show it.</summary>
    public const string Description =
        "Replay the MMU-notifier races behind the 2008-2013 fixes with a deterministic interleaving: each in its era's mode, where "
        + "the secondary MMU's auditor catches the stale mapping, then with today's chain and host, where the same steps leave it clean.";

    /// <summary>Creates <c>demo history</c>.</summary>
    public static Command Create(CliContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        var names = string.Join(", ", HistoricalRaceInfo.All.Select(info => info.Name));
        var races = new Argument<string[]>("race")
        {
            Description = $"The races to replay ({names}); all of them when none is named.",
            Arity = ArgumentArity.ZeroOrMore,
        };
        var plain = new Option<bool>("--plain")
        {
            Description = "Plain aligned text even on a terminal (always the case when output is redirected).",
        };
        var command = new Command(Name, Description);
        command.Arguments.Add(races);
        command.Options.Add(plain);
        command.SetAction(parseResult =>
        {
            var chosen = new List<HistoricalRace>();
            foreach (var name in parseResult.GetValue(races) ?? [])
            {
                if (HistoricalRaceInfo.Find(name) is not { } info)
                {
                    context.Error.WriteLine($"{CliErrorHandler.Prefix}race '{name}' does not exist: name one of {names}");
                    return ExitCodes.UsageError;
                }

                if (!chosen.Contains(info.Race))
                {
                    chosen.Add(info.Race);
                }
            }

            var result = HistoryDemo.Run(chosen);
            return Report(result, context, parseResult.GetValue(plain));
        });
        return command;
    }

    /// <summary>
    /// Prints <paramref name="result"/> and returns the exit code: success when every race was caught in its era and clean
    /// today; otherwise one internal-error line on standard error and <see cref="ExitCodes.InternalError"/>.
    /// </summary>
    internal static int Report(HistoryDemoResult result, CliContext context, bool plain)
    {
        HistoryDemoReport.Write(result, ReportWriter.Create(context, plain));
        if (result.Succeeded)
        {
            return ExitCodes.Success;
        }

        var failed = result.Races.Where(race => !race.Succeeded).Select(race => $"{race.Info.Name}: {HistoryDemoReport.Verdict(race)}");
        context.Error.WriteLine($"{CliErrorHandler.InternalPrefix}the history demonstration failed: {string.Join("; ", failed)}");
        return ExitCodes.InternalError;
    }
}
