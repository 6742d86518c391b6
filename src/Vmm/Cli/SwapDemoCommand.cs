using System.CommandLine;
using Hypervisor.HostMm.Swap;
using Hypervisor.Vmm.Cli.Output;
using Hypervisor.Vmm.Demo.Swap;

namespace Hypervisor.Vmm.Cli;

/// <summary>
/// <c>hv demo swap</c>: the swap demonstration (<see cref="SwapDemo"/>) with a live view on a terminal and plain text
/// otherwise, ending with one table. Exit 0 when every page came back intact, every audit was clean and secondary aging
/// kept more of the hot set resident; 70 (an internal error: a bug in hv) otherwise; 1 for a missing guest image; 2 for
/// a bad option.
/// </summary>
internal static class SwapDemoCommand
{
    /// <summary>The name of the subcommand.</summary>
    public const string Name = "swap";

    /// <summary>What the demo does, as command lists show it.</summary>
    public const string Description =
        "Swap a running guest's memory: memtest over guest RAM 4x the host limit (audited after every reclaim batch), "
        + "then the working-set guest with secondary-MMU aging on and off, then memtest under each EPT dirty tracking policy.";

    /// <summary>Creates <c>demo swap</c>.</summary>
    public static Command Create(CliContext context)
    {
        var defaults = new SwapDemoOptions();
        var memory = CliOptions.Size("--mem", "-m", "Phase 1's guest RAM", defaults.MemtestGuestBytes, 8UL << 20, 3UL << 30);
        var hostMemory = CliOptions.Size("--host-mem", null, "Phase 1's host memory limit (guest RAM must be at least 4x it)", defaults.MemtestHostBytes, 1UL << 20, 1UL << 30);
        var swap = new Option<string>("--swap")
        {
            Description = "The swap device: 'file' (a temporary swap file, the default), 'zram' (LZ4-compressed in memory) or the path of a swap file to create.",
            HelpName = "file|zram|PATH",
            DefaultValueFactory = _ => "file",
        };
        var hot = CliOptions.BoundedInt("--hot", "Phase 2's hot set in MiB, touched on every pass.", defaults.HotMib, 1, 1024);
        var cold = CliOptions.BoundedInt("--cold", "Phase 2's cold set in MiB, touched once per round.", defaults.ColdMib, 1, 2048);
        var rounds = CliOptions.BoundedInt("--rounds", "Phase 2's rounds (8 hot passes and one cold pass each).", defaults.Rounds, 1, 100);
        var workingSetHost = CliOptions.Size("--ws-host-mem", null, "Phase 2's host memory limit (more than the hot set, less than both sets)", defaults.WorkingSetHostBytes, 1UL << 20, 3UL << 30);
        var swapIo = RunHostMemoryOptions.SwapIoOption("How the swap file is read and written");
        var lru = RunHostMemoryOptions.LruOption("The host's LRU policy");
        var seed = CliOptions.BoundedInt("--seed", "Seed of memtest's pattern.", 7, 1, int.MaxValue);
        var guests = new Option<DirectoryInfo?>("--guests") { Description = "The folder of the sample guest images (default: guests/build of this repository)." };
        var noAudit = new Option<bool>("--no-audit") { Description = "Skip phase 1's audits (to time the phases); the demo then cannot claim a clean audit and fails." };
        var guest = new Option<string>("--guest")
        {
            Description = "Which guest: 'sample' (the three phases with the sample guests, the default) or 'linux' (Debian's Linux kernel from 'make -C guests linux' "
                + "boots in -m (default 512M) under --host-mem (default 128M) and runs memtest over all but 128 MiB of its RAM as a Linux process).",
            HelpName = "sample|linux",
            DefaultValueFactory = _ => "sample",
        };
        guest.AcceptOnlyFromAmong("sample", "linux");
        var plain = new Option<bool>("--plain") { Description = "No live view; plain text even on a terminal (always so when output is redirected)." };
        var command = new Command(Name, Description);
        foreach (var option in new Option[] { memory, hostMemory, hot, cold, rounds, workingSetHost, swap, swapIo, lru, seed, guests, guest, noAudit, plain })
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
            var device = parseResult.GetValue(swap) ?? "file";
            var linux = parseResult.GetValue(guest) == "linux";
            var guestBytes = linux && parseResult.GetResult(memory) is null or { Implicit: true } ? LinuxGuestBytes : parseResult.GetValue(memory).Bytes;
            var hostBytes = linux && parseResult.GetResult(hostMemory) is null or { Implicit: true } ? LinuxHostBytes : parseResult.GetValue(hostMemory).Bytes;
            if (linux && guestBytes < SwapDemo.LinuxReserveBytes + (64UL << 20))
            {
                context.Error.WriteLine($"{CliErrorHandler.Prefix}--guest linux needs -m of at least {(SwapDemo.LinuxReserveBytes >> 20) + 64} MiB (Linux keeps {SwapDemo.LinuxReserveBytes >> 20} MiB, memtest the rest), got {guestBytes >> 20} MiB");
                return ExitCodes.UsageError;
            }

            var options = new SwapDemoOptions
            {
                MemtestGuestBytes = guestBytes,
                MemtestHostBytes = hostBytes,
                HotMib = parseResult.GetValue(hot),
                ColdMib = parseResult.GetValue(cold),
                Rounds = parseResult.GetValue(rounds),
                WorkingSetHostBytes = parseResult.GetValue(workingSetHost).Bytes,
                SwapDevice = device == "zram" ? SwapDeviceKind.Zram : SwapDeviceKind.File,
                SwapPath = device is "zram" or "file" ? null : device,
                SwapDirectIo = RunHostMemoryOptions.IsDirect(parseResult, swapIo),
                LruPolicy = parseResult.GetValue(lru),
                Seed = (ulong)parseResult.GetValue(seed),
                GuestsFolder = parseResult.GetValue(guests)?.FullName,
                AuditEveryBatch = !parseResult.GetValue(noAudit),
                Trace = trace?.Recorder,
            };

            // A file system without O_DIRECT would only show when phase 1 builds its VM: ask the swap file's folder first.
            var swapFolder = options.SwapPath is { } swapPath ? Path.GetDirectoryName(Path.GetFullPath(swapPath)) ?? swapPath : Path.GetTempPath();
            if (options.SwapDirectIo && options.SwapDevice == SwapDeviceKind.File && !LinuxDirectIo.TryProbe(swapFolder, out var refusal))
            {
                context.Error.WriteLine($"{CliErrorHandler.Prefix}--swap-io direct: the swap file's folder cannot use direct I/O: {refusal}");
                return ExitCodes.UsageError;
            }

            if (!DemoExit.TryCreate<SwapDemo, SwapDemoOptionsException>(context, () => new SwapDemo(options), out var demo))
            {
                return ExitCodes.UsageError;
            }

            var live = context.IsTerminal && !parseResult.GetValue(plain);
            if (linux)
            {
                return RunLinux(context, demo, live, trace);
            }

            var result = live ? SwapDemoLiveView.Run(demo) : DemoWorker.RunPlain(demo.Run, () => demo.Stage, context.Output, "swap-demo");
            trace?.WriteFor(context, "hv demo swap");
            SwapDemoReport.Write(result, ReportWriter.Create(context, plain: !live));
            // Lost or corrupted pages, a dirty audit or aging that kept nothing resident are bugs in hv, not bad input.
            return DemoExit.Of(context, result.Succeeded, "swap demonstration", () => SwapDemoReport.Failure(result));
        });
        return command;
    }

    /// <summary>Guest RAM of <c>--guest linux</c> when -m is not given.</summary>
    public const ulong LinuxGuestBytes = 512UL << 20;

    /// <summary>The host limit of <c>--guest linux</c> when --host-mem is not given.</summary>
    public const ulong LinuxHostBytes = 128UL << 20;

    private static int RunLinux(CliContext context, SwapDemo demo, bool live, TraceSession? trace)
    {
        LinuxSwapResult result;
        try
        {
            result = DemoWorker.RunPlain(demo.RunLinux, () => demo.Stage, context.Output, "swap-demo");
        }
        catch (FileNotFoundException exception)
        {
            context.Error.WriteLine($"{CliErrorHandler.Prefix}{exception.Message}");
            return ExitCodes.InputError;
        }

        trace?.WriteFor(context, "hv demo swap --guest linux");
        SwapDemoReport.WriteLinux(result, ReportWriter.Create(context, plain: !live));
        return DemoExit.Of(context, result.Succeeded, "Linux swap demonstration", () => SwapDemoReport.Failure(result));
    }
}
