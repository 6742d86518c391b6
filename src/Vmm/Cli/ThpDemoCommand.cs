using System.CommandLine;
using Hypervisor.Vmm.Cli.Output;
using Hypervisor.Vmm.Demo.Thp;

namespace Hypervisor.Vmm.Cli;

/// <summary>
/// <c>hv demo thp</c>: the transparent huge page demonstration (<see cref="ThpDemo"/>) with a live view on a terminal and
/// plain text otherwise, ending with the THP off / on comparison table and the split storm and collapse pass. Exit 0
/// when everything verified (the guest's checks, the host's read-back, pages_2m off and on, the storm's splits and the
/// collapse's return of pages_2m, every audit clean); 70 (an internal error: a bug in hv) otherwise; 1 for a missing
/// guest image; 2 for a bad option.
/// </summary>
internal static class ThpDemoCommand
{
    /// <summary>The name of the subcommand.</summary>
    public const string Name = "thp";

    /// <summary>What the demo does, as command lists show it.</summary>
    public const string Description =
        "Run a memory-bound guest with THP off and with --thp always (EPT violations, EPT table pages, 2 MiB leaves, TLB misses, 2-D walks, time), "
        + "then split every huge page under the running guest and let khugepaged collapse them back; the guest's pages checked, audited after every step.";

    /// <summary>Creates <c>demo thp</c>.</summary>
    public static Command Create(CliContext context)
    {
        var defaults = new ThpDemoOptions();
        var memory = CliOptions.Size("--mem", "-m", "Guest RAM (a multiple of 2 MiB)", defaults.GuestBytes, 8UL << 20, 1UL << 30);
        var pages = CliOptions.BoundedInt("--pages", "Pages the guest fills, verifies, partly rewrites and verifies again.", defaults.Pages, 1, ThpDemoOptions.MaxPages);
        var kinds = CliOptions.BoundedInt("--kinds", "Distinct contents among them.", defaults.Kinds, 1, ThpDemoOptions.MaxPages);
        var every = CliOptions.BoundedInt("--every", "Between its two phases the guest rewrites every N-th page.", defaults.Every, 2, ThpDemoOptions.MaxPages);
        var passes = CliOptions.BoundedInt("--passes", "Times the guest re-reads and checks every page in each phase.", defaults.Passes, 1, 1000);
        var budget = CliOptions.BoundedInt("--collapse-budget", "Pages each khugepaged step scans (pages_to_scan; 512 per 2 MiB range).", defaults.CollapseBudget, 512, 1 << 20);
        var guests = new Option<DirectoryInfo?>("--guests") { Description = "The folder of the sample guest images (default: guests/build of this repository)." };
        var noAudit = new Option<bool>("--no-audit") { Description = "Skip the audits (to time the demo); the demo then cannot claim a clean audit and fails." };
        var plain = new Option<bool>("--plain") { Description = "No live view; plain text even on a terminal (always so when output is redirected)." };
        var command = new Command(Name, Description);
        foreach (var option in new Option[] { memory, pages, kinds, every, passes, budget, guests, noAudit, plain })
        {
            command.Options.Add(option);
        }

        var tracing = RunTraceOptions.AddTo(command);
        command.SetAction(parseResult =>
        {
            if (!tracing.TryOpenForDemo(parseResult, context, out var opened))
            {
                return ExitCodes.UsageError;
            }

            using var trace = opened;
            var options = new ThpDemoOptions
            {
                GuestBytes = parseResult.GetValue(memory).Bytes,
                Pages = parseResult.GetValue(pages),
                Kinds = parseResult.GetValue(kinds),
                Every = parseResult.GetValue(every),
                Passes = parseResult.GetValue(passes),
                CollapseBudget = parseResult.GetValue(budget),
                GuestsFolder = parseResult.GetValue(guests)?.FullName,
                AuditEveryStep = !parseResult.GetValue(noAudit),
                Trace = trace?.Recorder,
            };

            if (!DemoExit.TryCreate<ThpDemo, ThpDemoOptionsException>(context, () => new ThpDemo(options), out var demo, RunHostMemoryOptions.WithoutParameter))
            {
                return ExitCodes.UsageError;
            }

            var live = context.IsTerminal && !parseResult.GetValue(plain);
            var result = live ? ThpDemoLiveView.Run(demo) : DemoWorker.RunPlain(demo.Run, () => demo.Stage, context.Output, "thp-demo");
            trace?.WriteFor(context, "hv demo thp");
            ThpDemoReport.Write(result, ReportWriter.Create(context, plain: !live));
            // A corrupted page, a dirty audit, or huge pages that never appeared, split or came back is a bug in hv.
            return DemoExit.Of(context, result.Succeeded, "THP demonstration", () => ThpDemoReport.Failure(result));
        });
        return command;
    }
}
