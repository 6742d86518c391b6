using System.CommandLine;
using Hypervisor.Vmm.Cli.Output;
using Hypervisor.Vmm.Demo.Migrate;

namespace Hypervisor.Vmm.Cli;

/// <summary>
/// <c>hv demo migrate</c>: the migration demonstration (<see cref="MigrateDemo"/>) with a live view on a terminal and
/// plain text otherwise, ending with the trips' table and the balancing phase's. Exit 0 when every trip moved the
/// guest's pages, NUMA balancing moved most of them to the vCPU's node, the guest and the host's read-back found every
/// page intact and every audit was clean; 70 (an internal error: a bug in hv) otherwise; 1 for a missing guest image;
/// 2 for a bad option.
/// </summary>
internal static class MigrateDemoCommand
{
    /// <summary>The name of the subcommand.</summary>
    public const string Name = "migrate";

    /// <summary>What the demo does, as command lists show it.</summary>
    public const string Description =
        "Migrate a running guest's memory between two NUMA nodes back and forth, then let NUMA balancing move it to the vCPU's node: "
        + "pages migrated, failures, migration-entry waits in EPT faults, zaps and refaults; the guest's pages checked, audited after every step.";

    /// <summary>Creates <c>demo migrate</c>.</summary>
    public static Command Create(CliContext context)
    {
        var defaults = new MigrateDemoOptions();
        var memory = CliOptions.Size("--mem", "-m", "Guest RAM", defaults.GuestBytes, 8UL << 20, 1UL << 30);
        var pages = CliOptions.BoundedInt("--pages", "Pages the guest fills, verifies, partly rewrites and verifies again.", defaults.Pages, 1, MigrateDemoOptions.MaxPages);
        var kinds = CliOptions.BoundedInt("--kinds", "Distinct contents among them.", defaults.Kinds, 1, MigrateDemoOptions.MaxPages);
        var every = CliOptions.BoundedInt("--every", "Between its two phases the guest rewrites every N-th page.", defaults.Every, 2, MigrateDemoOptions.MaxPages);
        var passes = CliOptions.BoundedInt("--passes", "Times the guest re-reads and checks every page in each phase (the time the host has to migrate under it).", defaults.Passes, 1, 1000);
        var trips = CliOptions.BoundedInt("--trips", "Trips of all guest RAM between node 0 and node 1 (0 → 1 → 0 …).", defaults.Trips, MigrateDemoOptions.MinTrips, MigrateDemoOptions.MaxTrips);
        var budget = CliOptions.BoundedInt("--balance-budget", "Pages of address space each NUMA balancing step scans (0: all of guest RAM).", defaults.BalanceBudget, 0, 1 << 20);
        var guests = new Option<DirectoryInfo?>("--guests") { Description = "The folder of the sample guest images (default: guests/build of this repository)." };
        var noAudit = new Option<bool>("--no-audit") { Description = "Skip the audits (to time the demo); the demo then cannot claim a clean audit and fails." };
        var guest = new Option<string>("--guest")
        {
            Description = "Which guest: 'sample' (the ksm guest, both phases; the default) or 'linux' (Debian's Linux kernel from 'make -C guests linux' "
                + "in -m (default 384M) runs memtest over all but 128 MiB of it while the host migrates all guest RAM back and forth, trip after trip, from the kernel's banner until memtest ends).",
            HelpName = "sample|linux",
            DefaultValueFactory = _ => "sample",
        };
        guest.AcceptOnlyFromAmong("sample", "linux");
        var plain = new Option<bool>("--plain") { Description = "No live view; plain text even on a terminal (always so when output is redirected)." };
        var command = new Command(Name, Description);
        foreach (var option in new Option[] { memory, pages, kinds, every, passes, trips, budget, guests, guest, noAudit, plain })
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
            var linux = parseResult.GetValue(guest) == "linux";
            var guestBytes = linux && parseResult.GetResult(memory) is null or { Implicit: true } ? LinuxGuestBytes : parseResult.GetValue(memory).Bytes;
            if (linux && guestBytes < MigrateDemo.LinuxReserveBytes + (64UL << 20))
            {
                context.Error.WriteLine($"{CliErrorHandler.Prefix}--guest linux needs -m of at least {(MigrateDemo.LinuxReserveBytes >> 20) + 64} MiB (Linux keeps {MigrateDemo.LinuxReserveBytes >> 20} MiB, memtest the rest), got {guestBytes >> 20} MiB");
                return ExitCodes.UsageError;
            }

            var options = new MigrateDemoOptions
            {
                GuestBytes = guestBytes,
                Pages = parseResult.GetValue(pages),
                Kinds = parseResult.GetValue(kinds),
                Every = parseResult.GetValue(every),
                Passes = parseResult.GetValue(passes),
                Trips = parseResult.GetValue(trips),
                BalanceBudget = parseResult.GetValue(budget),
                GuestsFolder = parseResult.GetValue(guests)?.FullName,
                AuditEveryStep = !parseResult.GetValue(noAudit),
                Trace = trace?.Recorder,
            };

            if (!DemoExit.TryCreate<MigrateDemo, MigrateDemoOptionsException>(context, () => new MigrateDemo(options), out var demo))
            {
                return ExitCodes.UsageError;
            }

            var live = context.IsTerminal && !parseResult.GetValue(plain);
            if (linux)
            {
                return RunLinux(context, demo, live, trace);
            }

            var result = live ? MigrateDemoLiveView.Run(demo) : DemoWorker.RunPlain(demo.Run, () => demo.Stage, context.Output, "migrate-demo");
            trace?.WriteFor(context, "hv demo migrate");
            MigrateDemoReport.Write(result, ReportWriter.Create(context, plain: !live));
            // A lost or corrupted page, a dirty audit or a trip that moved nothing is a bug in hv, not bad input.
            return DemoExit.Of(context, result.Succeeded, "migration demonstration", () => MigrateDemoReport.Failure(result));
        });
        return command;
    }

    /// <summary>Guest RAM of <c>--guest linux</c> when -m is not given.</summary>
    public const ulong LinuxGuestBytes = 384UL << 20;

    private static int RunLinux(CliContext context, MigrateDemo demo, bool live, TraceSession? trace)
    {
        LinuxMigrateResult result;
        try
        {
            result = DemoWorker.RunPlain(demo.RunLinux, () => demo.Stage, context.Output, "migrate-demo");
        }
        catch (FileNotFoundException exception)
        {
            context.Error.WriteLine($"{CliErrorHandler.Prefix}{exception.Message}");
            return ExitCodes.InputError;
        }

        trace?.WriteFor(context, "hv demo migrate --guest linux");
        MigrateDemoReport.WriteLinux(result, ReportWriter.Create(context, plain: !live));
        return DemoExit.Of(context, result.Succeeded, "Linux migration demonstration", () => MigrateDemoReport.Failure(result));
    }
}
