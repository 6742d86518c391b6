using System.CommandLine;
using System.Globalization;
using Hypervisor.Vmm.Cli.Output;
using Hypervisor.Vmm.Demo.Stress;

namespace Hypervisor.Vmm.Cli;

/// <summary>
/// <c>hv demo stress</c>: every host mechanism at once under a running guest (<see cref="StressDemo"/>), with a live view
/// on a terminal and plain text otherwise, ending with one table and the line "0 auditor violations, 0 corrupted pages"
/// when clean. Exit 0 when every mechanism ran and reached guest memory, no page was corrupted and every audit was
/// clean; 6 (inconclusive) when every check held but some mechanism never acted in the time given; 70 (an internal error:
/// a bug in hv) when a check failed; 1 for a missing guest image; 2 for a bad option.
/// </summary>
internal static class StressDemoCommand
{
    /// <summary>The name of the subcommand.</summary>
    public const string Name = "stress";

    /// <summary>What the demo does, as command lists show it.</summary>
    public const string Description =
        "Run every host mechanism at once under a guest that writes and verifies its memory on every vCPU (KVM's mmu_stress_test): "
        + "reclaim with swap, KSM, migration and NUMA balancing, THP split and collapse, fork snapshots, mprotect storms (memory-fault exits), "
        + "memslot remaps, MADV_DONTNEED, and DMA copies through the engine's safe registration cache over buffers they all strike, each copy verified; "
        + "the host MM and MMU auditors run all the time. The host's operations are drawn from --seed.";

    /// <summary>Creates <c>demo stress</c>.</summary>
    public static Command Create(CliContext context)
    {
        var defaults = new StressDemoOptions();
        var duration = CliOptions.BoundedInt("--duration", "Seconds the host mechanisms run under the guest.", (int)defaults.Duration.TotalSeconds, 1, StressDemoOptions.MaxDurationSeconds);
        var seed = new Option<int?>("--seed")
        {
            Description = "The seed of the host operation schedule (0 to 2147483647; default: a new one, printed at the start): the same seed runs the same operations.",
            HelpName = "N",
            CustomParser = result =>
            {
                var text = result.Tokens.Count == 1 ? result.Tokens[0].Value : string.Join(' ', result.Tokens.Select(t => t.Value));
                if (int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var value))
                {
                    return value;
                }

                result.AddError($"--seed expects a whole number from 0 to {int.MaxValue}, got '{text}'");
                return null;
            },
        };
        var smp = CliOptions.BoundedInt("--smp", "vCPUs, each writing and verifying its own region of guest memory.", defaults.Vcpus, 1, StressDemoOptions.MaxVcpus);
        var memory = CliOptions.Size("--mem", "-m", "Guest RAM", defaults.GuestBytes, StressDemoOptions.MinGuestBytes, StressDemoOptions.MaxGuestBytes, Hypervisor.Notifier.Paging.LargePageSize);
        var without = new Option<StressMechanismKind[]>("--without")
        {
            Description = $"Leave scheduled mechanisms out, to narrow a failing seed down: any of {string.Join(", ", StressSchedule.Scheduled.Select(StressMechanismNames.Of))}.",
            AllowMultipleArgumentsPerToken = true,
            HelpName = "MECHANISM",
            CustomParser = result =>
            {
                var kinds = new List<StressMechanismKind>();
                foreach (var token in result.Tokens)
                {
                    if (!StressMechanismNames.TryParse(token.Value, out var kind))
                    {
                        result.AddError($"--without expects mechanism names ({string.Join(", ", Enum.GetValues<StressMechanismKind>().Select(StressMechanismNames.Of))}), got '{token.Value}'");
                        return [];
                    }

                    kinds.Add(kind);
                }

                return [.. kinds];
            },
        };
        var guests = new Option<DirectoryInfo?>("--guests") { Description = "The folder of the sample guest images (default: guests/build of this repository)." };
        var plain = new Option<bool>("--plain") { Description = "No live view; plain text even on a terminal (always so when output is redirected)." };
        var command = new Command(Name, Description);
        foreach (var option in new Option[] { duration, seed, smp, memory, without, guests, plain })
        {
            command.Options.Add(option);
        }

        var tracing = RunTraceOptions.AddTo(command);

        command.SetAction(parseResult =>
        {
            var options = new StressDemoOptions
            {
                Duration = TimeSpan.FromSeconds(parseResult.GetValue(duration)),
                Seed = parseResult.GetValue(seed) ?? Random.Shared.Next(),
                Vcpus = parseResult.GetValue(smp),
                GuestBytes = parseResult.GetValue(memory).Bytes,
                GuestsFolder = parseResult.GetValue(guests)?.FullName,
                Without = (parseResult.GetValue(without) ?? []).ToHashSet(),
            };

            if (!DemoExit.TryCreate<StressDemo, StressDemoOptionsException>(context, () => new StressDemo(options), out var demo))
            {
                return ExitCodes.UsageError;
            }

            if (!tracing.TryOpenForDemo(parseResult, context, out var opened))
            {
                return ExitCodes.UsageError;
            }

            using var trace = opened;
            if (trace is not null)
            {
                demo = new StressDemo(options with { Trace = trace.Recorder });
            }

            context.Output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"hv demo stress: seed {options.Seed} (the same --seed runs the same host operations)"));
            var live = context.IsTerminal && !parseResult.GetValue(plain);
            StressDemoResult result;
            try
            {
                result = live ? StressDemoLiveView.Run(demo) : DemoWorker.RunPlain(demo.Run, () => demo.Stage, context.Output, "stress-demo");
            }
            finally
            {
                trace?.Write(context.Error, new Dictionary<string, string> { ["command"] = "hv demo stress", ["seed"] = options.Seed.ToString(CultureInfo.InvariantCulture) });
            }

            StressDemoReport.Write(result, ReportWriter.Create(context, plain: !live));
            if (result.Succeeded)
            {
                return ExitCodes.Success;
            }

            if (result.ChecksHeld)
            {
                context.Error.WriteLine($"{CliErrorHandler.Prefix}{StressDemoReport.Inconclusive(result)}");
                return ExitCodes.Inconclusive;
            }

            context.Error.WriteLine($"{CliErrorHandler.InternalPrefix}the stress run failed (seed {options.Seed.ToString(CultureInfo.InvariantCulture)}): {StressDemoReport.Failure(result)}");
            return ExitCodes.InternalError;
        });
        return command;
    }
}
