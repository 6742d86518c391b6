using System.CommandLine;
using Hypervisor.Vmm.Cli.Output;
using Hypervisor.Vmm.Demo.Dma;

namespace Hypervisor.Vmm.Cli;

/// <summary>
/// <c>hv demo dma</c>: the registration-cache demonstration (<see cref="DmaDemo"/>): plain progress lines, then the two
/// phases' table. Exit 0 when the safe cache made copies with zero stale DMAs, was invalidated, the guest verified every
/// copy and the audits were clean, and the unsafe cache's stale DMAs were caught; 70 (an internal error) otherwise; 1 for
/// a missing guest image; 2 for a bad option.
/// </summary>
internal static class DmaDemoCommand
{
    /// <summary>The name of the subcommand.</summary>
    public const string Name = "dma";

    /// <summary>What the demo does, as command lists show it.</summary>
    public const string Description =
        "A DMA copy engine caches host frames of a guest's buffers while the host swaps, merges, migrates and remaps them: "
        + "with the registration cache on the user event channel (ummunotify) no copy is stale; without it the copies read and write stale frames.";

    /// <summary>Creates <c>demo dma</c>.</summary>
    public static Command Create(CliContext context)
    {
        var defaults = new DmaDemoOptions();
        var memory = CliOptions.Size("--mem", "-m", "Guest RAM", defaults.GuestBytes, 8UL << 20, 1UL << 30);
        var buffers = CliOptions.BoundedInt("--buffers", "Source buffers (and as many destinations) the guest copies between.", defaults.Buffers, 2, DmaDemoOptions.MaxBuffers);
        var pages = CliOptions.BoundedInt("--pages", "Pages per buffer.", defaults.PagesPerBuffer, 1, DmaDemoOptions.MaxPagesPerBuffer);
        var rounds = CliOptions.BoundedInt("--rounds", "Rounds; each refills the sources with a new pattern.", defaults.Rounds, 1, 100_000);
        var passes = CliOptions.BoundedInt("--passes", "Copy-and-verify passes per round.", defaults.Passes, 1, 1000);
        var seed = CliOptions.BoundedInt("--seed", "Seed of the guest's pattern and of the host's choice of buffers.", defaults.Seed, 0, int.MaxValue);
        var interval = CliOptions.BoundedInt("--interval", "Milliseconds the host's pressure thread pauses between two operations.", (int)defaults.PressureInterval.TotalMilliseconds, 0, 1000);
        var guests = new Option<DirectoryInfo?>("--guests") { Description = "The folder of the sample guest images (default: guests/build of this repository)." };
        var command = new Command(Name, Description);
        foreach (var option in new Option[] { memory, buffers, pages, rounds, passes, seed, interval, guests })
        {
            command.Options.Add(option);
        }

        command.SetAction(parseResult =>
        {
            var options = new DmaDemoOptions
            {
                GuestBytes = parseResult.GetValue(memory).Bytes,
                Buffers = parseResult.GetValue(buffers),
                PagesPerBuffer = parseResult.GetValue(pages),
                Rounds = parseResult.GetValue(rounds),
                Passes = parseResult.GetValue(passes),
                Seed = parseResult.GetValue(seed),
                PressureInterval = TimeSpan.FromMilliseconds(parseResult.GetValue(interval)),
                GuestsFolder = parseResult.GetValue(guests)?.FullName,
            };

            if (!DemoExit.TryCreate<DmaDemo, DmaDemoOptionsException>(context, () => new DmaDemo(options), out var demo))
            {
                return ExitCodes.UsageError;
            }

            DmaDemoResult result;
            try
            {
                result = DemoWorker.RunPlain(demo.Run, () => demo.Stage, context.Output, "dma-demo");
            }
            catch (FileNotFoundException exception)
            {
                context.Error.WriteLine($"{CliErrorHandler.Prefix}{exception.Message}");
                return ExitCodes.InputError;
            }

            DmaDemoReport.Write(result, ReportWriter.Create(context, plain: !context.IsTerminal));
            return DemoExit.Of(context, result.Succeeded, "DMA registration-cache demonstration", () => result.Failure!); // Failure is null exactly when Succeeded
        });
        return command;
    }
}
