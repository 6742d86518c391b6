using System.CommandLine;
using System.Globalization;
using Hypervisor.Vmm.Accel;
using Hypervisor.Vmm.Accel.Kvm;
using Hypervisor.Vmm.Boot;
using Hypervisor.Vmm.Cpu;
using Hypervisor.Vmm.Cli.Output;
using Hypervisor.Vmm.Devices;
using Hypervisor.Vmm.Machine;
using Hypervisor.Vmm.Tracing;
using Microsoft.Extensions.Logging;

namespace Hypervisor.Vmm.Cli;

/// <summary>
/// <c>hv run IMAGE</c> with QEMU-like options: boots the image, copies the guest console to standard output,
/// prints the closing report of what the interpreter and the MMU did, and exits with the guest's own exit code.
/// <c>hv run IMAGE IMAGE ...</c> or <c>--vms N</c> boots several VMs on one <see cref="HostMachine"/>, each on its own
/// thread, with console lines prefixed by the VM's index and a report column per VM plus the host; one VM takes the
/// path it always took.
/// </summary>
/// <remarks>
/// The exit code is the guest's, not QEMU's: a guest that writes 0 to the debug-exit port (success, for the sample
/// guests) makes <c>hv run</c> exit 0, where QEMU would exit <c>(0&lt;&lt;1)|1 = 1</c>. The report shows both. When
/// the VM breaks or hits a limit there is no guest code and <c>hv run</c> returns its own 3 or 4.
/// </remarks>
internal static class RunCommand
{
    /// <summary>What <c>hv run</c> does, as command lists show it.</summary>
    public const string Description = "Boot a guest image (ELF64, ELF with a PVH note, multiboot, or a Linux bzImage) and report what the MMU did.";

    /// <summary>The exit-status rules, at the end of the command's help.</summary>
    public static readonly string Details = string.Join(
        Environment.NewLine,
        "Exit status: the guest's own exit code: the value it wrote to the debug-exit port 0xF4 (0 to 255), or 0 for",
        "ACPI power-off or a reset (the i8042's 0xFE: the VM stops, as QEMU's -no-reboot, and the report says 'reset').",
        "QEMU's isa-debug-exit would return (value<<1)|1 instead (1 for a guest that wrote 0);",
        "the report's first lines show both. Without a guest code: 3 when the guest triple-faults or the VM cannot",
        "continue (under --host-mem also when host memory and swap are exhausted, or a page cannot be read back from",
        "swap: a memory failure); 4 at --timeout or --max-instructions; 5 when the vCPU halted with nothing that could",
        "wake it (HLT with interrupts off, or with no interrupt pending, no APIC timer armed and no PIT or RTC interrupt",
        "that can reach it).",
        "hv's own errors, one 'hv: error:' line each:",
        "1 for a missing or bad image (or KVM unavailable, or an I/O error), 2 for a bad option;",
        "70 for an internal error, a bug in hv ('hv: internal error:'; --log-level Debug shows the stack).",
        "A guest code from 1 to 5 looks like one of these; the report's title says which it is.",
        "Several VMs (several images, or --vms N): the first non-zero exit code in VM order, each VM's as above, else 0.",
        "They share one simulated host (one frame pool, one reclaimer and swap device); each has its own host process",
        "and, under --host-mem, its own memory cgroup of that limit. Only the emulated accelerator runs several VMs.",
        string.Empty,
        "Accelerators: 'emulated' runs the Iced-based interpreter over the simulated host MM and the EPT secondary MMU;",
        "'kvm' runs the same image and devices on /dev/kvm.");

    /// <summary>The largest <c>--vms</c> the parser accepts; the host's size bounds it further (<see cref="HostMachine.MaxVmCount(ulong, int?)"/>).</summary>
    internal const int MaxVms = 1024;

    /// <summary>Guest RAM when <c>-m</c> is not given: 128 MiB, as QEMU.</summary>
    internal const ulong DefaultMemoryBytes = 128UL << 20;

    /// <summary>The wall-clock limit under kvm when <c>--timeout</c> is not given (KVM here emulates guest kernel code slowly).</summary>
    internal static readonly TimeSpan KvmDefaultTimeout = TimeSpan.FromMinutes(10);

    /// <summary>Creates <c>run</c>.</summary>
    public static Command Create(CliContext context, Option<LogLevel> logLevel)
    {
        var image = new Argument<FileInfo[]>("IMAGE")
        {
            Description = "The guest image: an ELF file (e.g. guests/build/hello.elf) or a Linux bzImage (e.g. /boot/vmlinuz-*); several images boot as several VMs on one shared host.",
            Arity = ArgumentArity.OneOrMore,
        };
        var vms = CliOptions.BoundedInt(
            "--vms",
            "Boot N copies of IMAGE, each its own VM on its own thread, on one shared host (one frame pool, one reclaimer); console lines are prefixed [0], [1] …. Emulated only; not with several images.",
            1,
            1,
            MaxVms);
        var memory = CliOptions.Size("--mem", "-m", "Guest RAM", DefaultMemoryBytes, VmOptions.MinMemoryBytes, VmOptions.MaxMemoryBytes);
        var smp = CliOptions.BoundedInt("--smp", "vCPUs: the boot vCPU starts at the image's entry, the others wait for the guest's INIT-SIPI-SIPI, each on its own thread.", 1, 1, VmOptions.MaxCpuCount);
        var commandLine = new Option<string>("--cmdline", "-append") { Description = "The guest command line.", DefaultValueFactory = _ => string.Empty };
        var initrd = new Option<FileInfo?>("--initrd")
        {
            Description = "An initial RAM disk (initramfs) passed to the guest as a boot module (PVH start_info's module list, or multiboot's) or in a bzImage's zero page, placed at the top of RAM below 4 GiB (below the kernel's initrd_addr_max for a bzImage).",
            HelpName = "FILE",
        };
        var accel = CliOptions.Enum("--accel", "Where the guest runs.", AcceleratorKind.Emulated);
        var tier = CliOptions.Enum(
            "--tier",
            "Emulated only: Interp runs every block on the interpreter; Jit (the default) compiles a block to IL on its "
            + $"{X86Cpu.DefaultJitThreshold}th run (--jit-threshold), run from then on by the .NET JIT.",
            ExecutionTier.Jit);
        var jitThreshold = CliOptions.BoundedInt(
            "--jit-threshold",
            $"Emulated, --tier jit: compile a block on its Nth run (1: its first; default {X86Cpu.DefaultJitThreshold}).",
            X86Cpu.DefaultJitThreshold,
            1,
            int.MaxValue);
        var jitCompile = CliOptions.Enum(
            "--jit-compile",
            "Emulated, --tier jit: Background (the default) compiles a hot block on a background thread while the vCPU goes on "
            + "interpreting it; Sync compiles it on the vCPU thread at once (the share retired in compiled code is then the same every run).",
            JitCompileMode.Background);
        var protocol = CliOptions.Enum("--boot", "Boot protocol (Auto: Linux for a bzImage; for ELF the PVH note, else 64-bit entry, else multiboot).", BootProtocol.Auto);
        var plain = new Option<bool>("--plain") { Description = "No live panel; plain text even on a terminal (always so when output is redirected)." };
        var timeout = CliOptions.BoundedInt("--timeout", "Stop the guest after this many seconds (0: never).", 0, 0, 86_400);
        var hostForks = CliOptions.BoundedInt(
            "--host-fork-every",
            "Emulated only: the host forks the VM's process every N ms while the guest runs and reaps each snapshot (copy-on-write under a running guest; 0: off).",
            0,
            0,
            60_000);
        var dirtyPolicy = DirtyPolicyOption.Create();
        var maxInstructions = new Option<long>("--max-instructions")
        {
            Description = "Stop the guest after this many instructions (0: never; emulated only).",
            HelpName = "N",
            DefaultValueFactory = _ => 0,
            CustomParser = result =>
            {
                var text = result.Tokens.Count == 0 ? string.Empty : result.Tokens[^1].Value;
                if (long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var value))
                {
                    return value;
                }

                result.AddError($"--max-instructions expects a whole number of at least 0, got '{text}'");
                return 0;
            },
        };

        var hostMemory = RunHostMemoryOptions.Create();
        var ksm = RunKsmOptions.Create();
        var numa = RunNumaOptions.Create();
        var thp = RunThpOptions.Create();
        var tracing = RunTraceOptions.Create();
        var dmaCache = DmaCacheOption.Create();
        var command = new Command("run", Description);
        command.Arguments.Add(image);
        foreach (var option in new Option[] { vms, memory, smp, commandLine, initrd, accel, tier, jitThreshold, jitCompile, protocol, plain, timeout, maxInstructions, hostForks, dirtyPolicy, dmaCache }.Concat(hostMemory.All).Concat(ksm.All).Concat(numa.All).Concat(thp.All).Concat(tracing.All))
        {
            command.Options.Add(option);
        }

        command.SetAction(parseResult =>
        {
            var files = parseResult.GetValue(image)!;
            var copies = parseResult.GetValue(vms);
            if (files.Length > 1 && parseResult.GetResult(vms) is { Implicit: false })
            {
                context.Error.WriteLine($"{CliErrorHandler.Prefix}--vms {copies} boots copies of one image; with {files.Length} images ({string.Join(", ", files.Select(f => f.Name))}) each image is already its own VM: give one image with --vms, or several without it");
                return ExitCodes.UsageError;
            }

            foreach (var given in files)
            {
                if (!given.Exists)
                {
                    context.Error.WriteLine($"{CliErrorHandler.Prefix}image '{given.FullName}' does not exist (build the sample guests with 'make -C guests')");
                    return ExitCodes.InputError;
                }
            }

            var initrdFile = parseResult.GetValue(initrd);
            if (initrdFile is { Exists: false })
            {
                context.Error.WriteLine($"{CliErrorHandler.Prefix}initrd '{initrdFile.FullName}' does not exist (the Linux guest's initramfs is built by 'make -C guests linux')");
                return ExitCodes.InputError;
            }

            var initialRamDisk = initrdFile is null ? null : InitialRamDisk.Load(initrdFile.FullName);

            // Each VM's image, in VM order: the images as given, or one image N times.
            var images = files.Length > 1 ? files : Enumerable.Repeat(files[0], copies).ToArray();
            var parsed = files.ToDictionary(f => f, f => BootImage.Parse(File.ReadAllBytes(f.FullName)));
            var accelerator = parseResult.GetValue(accel);
            var instructionLimit = parseResult.GetValue(maxInstructions);
            var forkMs = parseResult.GetValue(hostForks);
            var seconds = parseResult.GetValue(timeout);
            var hostMemBytes = parseResult.GetValue(hostMemory.HostMem).Bytes;
            if (accelerator != AcceleratorKind.Emulated && (instructionLimit > 0 || forkMs > 0 || hostMemBytes > 0))
            {
                var option = instructionLimit > 0 ? "--max-instructions" : forkMs > 0 ? "--host-fork-every" : "--host-mem";
                context.Error.WriteLine($"{CliErrorHandler.Prefix}{option} needs --accel emulated: KVM runs guest RAM outside the simulated host and counts no instructions");
                return ExitCodes.UsageError;
            }

            if (accelerator != AcceleratorKind.Emulated && parseResult.GetResult(tier) is { Implicit: false })
            {
                context.Error.WriteLine($"{CliErrorHandler.Prefix}--tier needs --accel emulated: under KVM the guest's code runs on the host CPU");
                return ExitCodes.UsageError;
            }

            var threshold = parseResult.GetValue(jitThreshold);
            if (parseResult.GetResult(jitThreshold) is { Implicit: false })
            {
                if (accelerator != AcceleratorKind.Emulated)
                {
                    context.Error.WriteLine($"{CliErrorHandler.Prefix}--jit-threshold needs --accel emulated: under KVM the guest's code runs on the host CPU");
                    return ExitCodes.UsageError;
                }

                if (parseResult.GetValue(tier) != ExecutionTier.Jit)
                {
                    context.Error.WriteLine($"{CliErrorHandler.Prefix}--jit-threshold {threshold} needs --tier jit: the interpreter tier compiles no block");
                    return ExitCodes.UsageError;
                }
            }

            if (parseResult.GetResult(jitCompile) is { Implicit: false } && (accelerator != AcceleratorKind.Emulated || parseResult.GetValue(tier) != ExecutionTier.Jit))
            {
                context.Error.WriteLine($"{CliErrorHandler.Prefix}--jit-compile {parseResult.GetValue(jitCompile)} needs --accel emulated and --tier jit: only the translating tier compiles blocks");
                return ExitCodes.UsageError;
            }

            var dma = parseResult.GetValue(dmaCache);
            if (dma is not null && accelerator != AcceleratorKind.Emulated)
            {
                context.Error.WriteLine($"{CliErrorHandler.Prefix}--dma-cache needs --accel emulated: the DMA engine copies frame to frame in the simulated host, and KVM keeps guest RAM outside it");
                return ExitCodes.UsageError;
            }

            var dirtyTracking = parseResult.GetValue(dirtyPolicy);
            if (DirtyPolicyOption.Refusal(dirtyTracking, accelerator) is { } refusal)
            {
                context.Error.WriteLine($"{CliErrorHandler.Prefix}{refusal}");
                return ExitCodes.UsageError;
            }

            if (images.Length > 1 && accelerator != AcceleratorKind.Emulated)
            {
                var what = files.Length > 1 ? $"{files.Length} images" : $"--vms {copies}";
                context.Error.WriteLine($"{CliErrorHandler.Prefix}{what} needs --accel emulated: several VMs share one simulated host (one frame pool, one reclaimer), and KVM keeps guest RAM outside it");
                return ExitCodes.UsageError;
            }

            if (accelerator == AcceleratorKind.Kvm && !KvmAvailability.IsAvailable(out var why))
            {
                context.Error.WriteLine($"{CliErrorHandler.Prefix}--accel kvm is not available here: {why}");
                return ExitCodes.InputError;
            }

            using var loggerFactory = CliLogging.CreateFactory(parseResult.GetValue(logLevel));
            var options = new VmOptions
            {
                Accelerator = accelerator,
                MemoryBytes = parseResult.GetValue(memory).Bytes,
                CpuCount = parseResult.GetValue(smp),
                CommandLine = parseResult.GetValue(commandLine) ?? string.Empty,
                InitialRamDisk = initialRamDisk,
                Protocol = parseResult.GetValue(protocol),
                InstructionLimit = instructionLimit,
                Tier = parseResult.GetValue(tier),
                JitThreshold = threshold,
                JitCompile = parseResult.GetValue(jitCompile),
                HostForkInterval = forkMs > 0 ? TimeSpan.FromMilliseconds(forkMs) : null,
                DirtyTracking = dirtyTracking,
                DmaCache = dma,
                Timeout = seconds > 0 ? TimeSpan.FromSeconds(seconds) : accelerator == AcceleratorKind.Kvm ? KvmDefaultTimeout : null,
                LoggerFactory = loggerFactory,
            };

            if (!hostMemory.TryApply(parseResult, options, images.Length, out options, out var hostMemoryError))
            {
                context.Error.WriteLine($"{CliErrorHandler.Prefix}{hostMemoryError}");
                return ExitCodes.UsageError;
            }

            if (!ksm.TryApply(parseResult, options, out options, out var ksmError))
            {
                context.Error.WriteLine($"{CliErrorHandler.Prefix}{ksmError}");
                return ExitCodes.UsageError;
            }

            if (!numa.TryApply(parseResult, options, out options, out var numaError))
            {
                context.Error.WriteLine($"{CliErrorHandler.Prefix}{numaError}");
                return ExitCodes.UsageError;
            }

            if (!thp.TryApply(parseResult, options, out options, out var thpError))
            {
                context.Error.WriteLine($"{CliErrorHandler.Prefix}{thpError}");
                return ExitCodes.UsageError;
            }

            if (!tracing.TryOpen(parseResult, accelerator, out var opened, out var traceError))
            {
                context.Error.WriteLine($"{CliErrorHandler.Prefix}{traceError}");
                return ExitCodes.UsageError;
            }

            using var trace = opened;
            options = options with { Trace = trace?.Recorder };
            if (images.Length > 1)
            {
                return RunGroup(context, parseResult.GetValue(plain), options, images, parsed, copies: files.Length == 1, trace);
            }

            var bootImage = parsed[images[0]];
            var file = images[0];

            // The live panel shows the interpreter's and the MMU's counters, which only the emulated accelerator has.
            var live = accelerator == AcceleratorKind.Emulated && context.IsTerminal && !parseResult.GetValue(plain);
            var console = live ? new GuestConsole() : new GuestConsole(context.Output);
            Vm built;
            try
            {
                built = new Vm(options, console);
            }
            catch (VmOptionsException exception) when (exception.Rule is VmOptionRule.Swap or VmOptionRule.LruPolicy)
            {
                context.Error.WriteLine($"{CliErrorHandler.Prefix}{CliErrorHandler.OneLine(RunHostMemoryOptions.Describe(exception, options))}");
                return ExitCodes.UsageError;
            }

            using var vm = built;
            vm.Boot(bootImage);
            VmRunResult result;
            try
            {
                using var sampler = trace is null ? null : new TraceSampler(trace.Recorder, [vm]);
                result = live ? LivePanel.Run(vm, file.Name) : vm.Run();
            }
            finally
            {
                // Also when the run failed: the timeline up to the failure is what explains it.
                trace?.Write(context.Error, TraceFields(file.Name));
            }
            if (live)
            {
                context.Output.Write(console.Transcript());
            }

            RunReport.Write(result, vm, file.Name, ReportWriter.Create(context, plain: !live));
            context.Report?.AddVmCounters(vm, file.Name, RunReportCounters.OfVm(result, vm));
            context.Report?.AddCounters(RunReportCounters.OfHost(result.HostMemory, result.Ksm));
            return result.ExitCode;
        });
        return command;
    }

    /// <summary>The trace file's <c>otherData</c> fields: what ran.</summary>
    private static Dictionary<string, string> TraceFields(string images) => new()
    {
        ["command"] = "hv run",
        ["images"] = images,
        ["clock"] = "Stopwatch, microseconds since the trace began",
    };

    /// <summary>
    /// Several VMs on one <see cref="HostMachine"/>: builds and boots each (VM i runs <paramref name="images"/>[i]),
    /// runs them all at once, prefixes each VM's console lines with its index, and writes one report with a column per
    /// VM and one for the host.
    /// </summary>
    /// <returns>The first non-zero exit code in VM order (each VM's as a lone <c>hv run</c> would return it), else 0;
    /// <see cref="ExitCodes.UsageError"/> when the VMs do not fit one host.</returns>
    private static int RunGroup(CliContext context, bool plain, VmOptions options, FileInfo[] images, Dictionary<FileInfo, IBootImage> parsed, bool copies, TraceSession? trace)
    {
        var what = copies ? $"--vms {images.Length}" : $"{images.Length} images";
        HostMachine built;
        try
        {
            built = new HostMachine(options, images.Length);
        }
        catch (VmOptionsException exception) when (exception.Rule is VmOptionRule.VmCount)
        {
            context.Error.WriteLine($"{CliErrorHandler.Prefix}{what}: {CliErrorHandler.OneLine(RunHostMemoryOptions.WithoutParameter(exception))}");
            return ExitCodes.UsageError;
        }
        catch (VmOptionsException exception) when (exception.Rule is VmOptionRule.Swap or VmOptionRule.LruPolicy)
        {
            context.Error.WriteLine($"{CliErrorHandler.Prefix}{CliErrorHandler.OneLine(RunHostMemoryOptions.Describe(exception, options))}");
            return ExitCodes.UsageError;
        }

        using var machine = built;
        var live = context.IsTerminal && !plain;
        var outputLock = new Lock();
        var vms = new List<Vm>(images.Length);
        try
        {
            for (var i = 0; i < images.Length; i++)
            {
                var console = live ? new GuestConsole() : new GuestConsole(new PrefixedLineWriter(context.Output, outputLock, PrefixedLineWriter.PrefixOf(i)));
                vms.Add(new Vm(options, console, machine));
                vms[i].Boot(parsed[images[i]]);
            }

            var names = images.Select(f => f.Name).ToArray();
            var start = System.Diagnostics.Stopwatch.GetTimestamp();
            IReadOnlyList<VmRunResult> results;
            try
            {
                using var sampler = trace is null ? null : new TraceSampler(trace.Recorder, vms);
                results = live ? LivePanel.Run(machine, vms, names) : machine.Run(vms);
            }
            finally
            {
                trace?.Write(context.Error, TraceFields(string.Join(' ', names)));
            }

            var wallClock = System.Diagnostics.Stopwatch.GetElapsedTime(start);
            if (live)
            {
                for (var i = 0; i < vms.Count; i++)
                {
                    context.Output.Write(PrefixedLineWriter.Prefix(vms[i].Console.Transcript(), PrefixedLineWriter.PrefixOf(i)));
                }
            }

            RunGroupReport.Write(results, vms, machine, names, copies, wallClock, ReportWriter.Create(context, plain: !live));
            if (context.Report is { } report)
            {
                for (var i = 0; i < vms.Count; i++)
                {
                    report.AddVmCounters(vms[i], PrefixedLineWriter.PrefixOf(i) + names[i], RunReportCounters.OfVm(results[i], vms[i]));
                }

                report.AddCounter("vms", vms.Count);
                report.AddCounter("wall_clock_ms", Math.Round(wallClock.TotalMilliseconds, 3));
                report.AddCounter("host_frames_in_use", machine.Stats.Memory.AllocatedFrames);
                report.AddCounters(RunReportCounters.OfHost(results[^1].HostMemory, results[^1].Ksm));
            }

            return RunGroupReport.ExitCode(results);
        }
        finally
        {
            // Every VM's process exits before the shared host is freed.
            for (var i = vms.Count - 1; i >= 0; i--)
            {
                vms[i].Dispose();
            }
        }
    }
}
