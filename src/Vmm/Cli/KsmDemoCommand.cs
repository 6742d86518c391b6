using System.CommandLine;
using Hypervisor.Vmm.Cli.Output;
using Hypervisor.Vmm.Demo.Ksm;

namespace Hypervisor.Vmm.Cli;

/// <summary>
/// <c>hv demo ksm</c>: the KSM demonstration (<see cref="KsmDemo"/>) with a live view on a terminal and plain text
/// otherwise, ending with one table. Exit 0 when the guests' pages merged and memory was saved, the copy-on-write breaks
/// kept every VM's writes its own, every guest verified its pages and every audit was clean; 70 (an internal error: a
/// bug in hv) otherwise; 1 for a missing guest image; 2 for a bad option.
/// </summary>
internal static class KsmDemoCommand
{
    /// <summary>The name of the subcommand.</summary>
    public const string Name = "ksm";

    /// <summary>What the demo does, as command lists show it.</summary>
    public const string Description =
        "Merge several running guests' equal pages with the host's KSM: memory before and after merging, copy-on-write breaks "
        + "when the guests rewrite, an isolation check of every VM's pages, change_pte hits in legacy mode; audited after every ksmd batch.";

    /// <summary>Creates <c>demo ksm</c>.</summary>
    public static Command Create(CliContext context)
    {
        var defaults = new KsmDemoOptions();
        var vms = CliOptions.BoundedInt("--vms", "VMs booted from the ksm guest with the same data.", defaults.Vms, KsmDemoOptions.MinVms, KsmDemoOptions.MaxVms);
        var memory = CliOptions.Size("--mem", "-m", "Each VM's guest RAM", defaults.GuestBytes, 8UL << 20, 1UL << 30);
        var pages = CliOptions.BoundedInt("--pages", "Pages each guest fills.", defaults.Pages, 1, KsmDemoOptions.MaxPages);
        var kinds = CliOptions.BoundedInt("--kinds", "Distinct contents among them.", defaults.Kinds, 1, KsmDemoOptions.MaxPages);
        var every = CliOptions.BoundedInt("--every", "After merging, each guest rewrites every N-th page with its own content.", defaults.Every, 2, KsmDemoOptions.MaxPages);
        var pagesToScan = CliOptions.BoundedInt("--pages-to-scan", "ksmd's pages_to_scan.", defaults.PagesToScan, 1, Machine.VmOptions.MaxKsmPagesToScan);
        var sleep = CliOptions.BoundedInt("--sleep", "ksmd's sleep_millisecs.", defaults.SleepMilliseconds, 0, Machine.VmOptions.MaxKsmSleepMilliseconds);
        var modernChangePte = new Option<bool>("--no-legacy-change-pte") { Description = "Do not issue the historical change_pte (as Linux 6.10+); the change_pte row then shows no calls." };
        var guests = new Option<DirectoryInfo?>("--guests") { Description = "The folder of the sample guest images (default: guests/build of this repository)." };
        var noAudit = new Option<bool>("--no-audit") { Description = "Skip the audits (to time the demo); the demo then cannot claim a clean audit and fails." };
        var plain = new Option<bool>("--plain") { Description = "No live view; plain text even on a terminal (always so when output is redirected)." };
        var command = new Command(Name, Description);
        foreach (var option in new Option[] { vms, memory, pages, kinds, every, pagesToScan, sleep, modernChangePte, guests, noAudit, plain })
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
            var options = new KsmDemoOptions
            {
                Vms = parseResult.GetValue(vms),
                GuestBytes = parseResult.GetValue(memory).Bytes,
                Pages = parseResult.GetValue(pages),
                Kinds = parseResult.GetValue(kinds),
                Every = parseResult.GetValue(every),
                PagesToScan = parseResult.GetValue(pagesToScan),
                SleepMilliseconds = parseResult.GetValue(sleep),
                LegacyChangePte = !parseResult.GetValue(modernChangePte),
                GuestsFolder = parseResult.GetValue(guests)?.FullName,
                AuditEveryStep = !parseResult.GetValue(noAudit),
                Trace = trace?.Recorder,
            };

            if (!DemoExit.TryCreate<KsmDemo, KsmDemoOptionsException>(context, () => new KsmDemo(options), out var demo))
            {
                return ExitCodes.UsageError;
            }

            var live = context.IsTerminal && !parseResult.GetValue(plain);
            KsmDemoResult result;
            try
            {
                result = live ? KsmDemoLiveView.Run(demo) : DemoWorker.RunPlain(demo.Run, () => demo.Stage, context.Output, "ksm-demo");
            }
            finally
            {
                trace?.WriteFor(context, "hv demo ksm"); // also when the demo threw: the timeline up to the failure
            }

            KsmDemoReport.Write(result, ReportWriter.Create(context, plain: !live));
            return DemoExit.Of(context, result.Succeeded, "KSM demonstration", () => KsmDemoReport.Failure(result));
        });
        return command;
    }
}
