using System.Globalization;
using Hypervisor.Vmm.Accel.Kvm;
using Hypervisor.Vmm.Boot;
using Hypervisor.Vmm.Cli.Output;
using Hypervisor.Vmm.Devices;
using Hypervisor.Vmm.Machine;
using Microsoft.Extensions.Logging;

namespace Hypervisor.Vmm.Cli;

/// <summary><c>hv run --accel kvm</c>: the same image, boot protocol and devices on /dev/kvm.</summary>
internal static class KvmRun
{
    /// <summary>The wall-clock limit when <c>--timeout</c> is not given (KVM here emulates guest kernel code slowly).</summary>
    public static readonly TimeSpan DefaultTimeout = TimeSpan.FromMinutes(10);

    /// <summary>Runs <paramref name="image"/> on KVM and returns <c>hv run</c>'s exit code (the guest's own, see <see cref="RunCommand.ExitCode"/>).</summary>
    public static int Run(ElfImage image, string name, VmOptions options, CliContext context)
    {
        options.Validate();
        if (options.InstructionLimit > 0 || options.HostForkInterval is not null)
        {
            var option = options.InstructionLimit > 0 ? "--max-instructions" : "--host-fork-every";
            context.Error.WriteLine($"{CliErrorHandler.Prefix}{option} needs --accel emulated: KVM runs guest RAM outside the simulated host and counts no instructions");
            return ExitCodes.UsageError;
        }

        if (!KvmAvailability.IsAvailable(out var why))
        {
            context.Error.WriteLine($"{CliErrorHandler.Prefix}--accel kvm is not available here: {why}");
            return ExitCodes.RuntimeError;
        }

        var console = new GuestConsole(context.Output);
        var stop = new VmStopSignal();
        var bus = new DeviceBus(options.LoggerFactory?.CreateLogger(DeviceBus.LogCategory));
        PcDevices.Attach(bus, console, stop, options.CpuCount, options.MemoryBytes);
        using var machine = new KvmMachine(options.MemoryBytes, options.CpuCount, options.LoggerFactory?.CreateLogger("Hypervisor.Vmm.Accel.Kvm"));
        var loaded = ImageLoader.Load(image, machine.Memory);
        var protocol = GuestBoot.Resolve(loaded, options.Protocol);
        machine.SetInitialState(GuestBoot.Setup(machine.Memory, loaded, protocol, options.CommandLine));
        var result = machine.Run(bus, stop, options.Timeout ?? DefaultTimeout);
        console.Flush();

        var status = Status(result.Kind, result.ExitStatus);
        var guestExitCode = GuestExitCode(result.Kind, stop.Request);
        var exitCode = RunCommand.ExitCode(guestExitCode, status);
        var c = CultureInfo.InvariantCulture;
        var writer = ReportWriter.Create(context, plain: true);
        writer.Title(Title(name, result.Kind, guestExitCode, exitCode));
        if (result.Kind != KvmStopKind.DeviceStop)
        {
            writer.Paragraph(ShowsRegisters(status, guestExitCode) ? [result.Detail, .. DescribeState(machine)] : [result.Detail]);
        }

        var table = new ReportTable(new ReportColumn("figure"), new ReportColumn("value", AlignRight: true), new ReportColumn("what it counts", Wrap: true));
        if (guestExitCode is { } code)
        {
            table.AddRow("guest exit code", code.ToString(c), RunCommand.DescribeGuestExit(stop.Request, code));
        }

        table.AddRow("boot", protocol.ToString(), $"{options.MemoryBytes >> 20} MiB, {options.CpuCount} vCPU(s), cmdline \"{options.CommandLine}\"");
        table.AddRow("time", $"{result.Elapsed.TotalMilliseconds.ToString("N1", c)} ms", "in KVM_RUN and device exits");
        table.AddRow("VM exits", result.Exits.ToString("N0", c), $"{result.PortIoExits.ToString("N0", c)} port I/O, {result.MmioExits.ToString("N0", c)} MMIO");
        table.AddRow("last RIP", $"0x{result.Rip:x}", "where the vCPU stopped");
        writer.Table(table);
        return exitCode;
    }

    /// <summary>
    /// The QEMU-style status of a stop, the same mapping as the emulated accelerator's <see cref="VmRunResult"/>: the
    /// device's status, 0 for HLT, 4 at a limit, 3 for every stop that broke the VM (shutdown, failed entry, internal
    /// error, an unhandled exit).
    /// </summary>
    /// <param name="kind">Why the run stopped.</param>
    /// <param name="deviceExitStatus">The run's <see cref="KvmRunResult.ExitStatus"/> (used only for <see cref="KvmStopKind.DeviceStop"/>).</param>
    internal static int Status(KvmStopKind kind, int deviceExitStatus) => kind switch
    {
        KvmStopKind.DeviceStop => deviceExitStatus,
        KvmStopKind.Halted => 0,
        KvmStopKind.Timeout or KvmStopKind.Cancelled => 4,
        _ => 3,
    };

    /// <summary>The guest's own exit code: the device request's for a device stop (0 without one), 0 for HLT, else null.</summary>
    /// <param name="kind">Why the run stopped.</param>
    /// <param name="request">The stop signal's request after the run, or null.</param>
    internal static int? GuestExitCode(KvmStopKind kind, VmStop? request) => kind switch
    {
        KvmStopKind.DeviceStop => request is not null ? VmRunResult.GuestExitCodeOf(request) : 0,
        KvmStopKind.Halted => 0,
        _ => null,
    };

    /// <summary>Whether the report follows the detail with the vCPU's registers: only when the VM broke (status 3, no guest code).</summary>
    internal static bool ShowsRegisters(int status, int? guestExitCode) => guestExitCode is null && status == 3;

    /// <summary>The report's first line: the image, how the run ended and <c>hv run</c>'s exit code.</summary>
    /// <param name="name">The image's file name.</param>
    /// <param name="kind">Why the run stopped.</param>
    /// <param name="guestExitCode">The guest's own code, or null.</param>
    /// <param name="exitCode"><c>hv run</c>'s exit code.</param>
    internal static string Title(string name, KvmStopKind kind, int? guestExitCode, int exitCode) =>
        $"hv run {name} --accel kvm: {Describe(kind, guestExitCode)}, exit status {exitCode}";

    private static string Describe(KvmStopKind kind, int? guestExitCode) => kind switch
    {
        KvmStopKind.DeviceStop => $"the guest exited with code {guestExitCode}",
        KvmStopKind.Halted => "the guest halted",
        KvmStopKind.Shutdown => "the guest triple-faulted (KVM_EXIT_SHUTDOWN)",
        KvmStopKind.Timeout => "timed out",
        KvmStopKind.Cancelled => "cancelled",
        _ => $"the VM could not continue ({kind})",
    };

    // The vCPU's registers after a stop that broke the VM, in the interpreter's report layout.
    private static string[] DescribeState(KvmMachine machine)
    {
        var r = machine.GetRegisters();
        var s = machine.GetSpecialRegisters();
        var longMode = (s.Efer & (1UL << 10)) != 0;
        var bits = longMode && s.Cs.L != 0 ? 64 : s.Cs.Db != 0 ? 32 : 16;
        return
        [
            $"RIP={r.Rip:x16} RFLAGS={r.Rflags:x8} CPL={s.Cs.Dpl} mode={bits}-bit",
            $"RAX={r.Rax:x16} RBX={r.Rbx:x16} RCX={r.Rcx:x16} RDX={r.Rdx:x16}",
            $"RSI={r.Rsi:x16} RDI={r.Rdi:x16} RBP={r.Rbp:x16} RSP={r.Rsp:x16}",
            $"R8 ={r.R8:x16} R9 ={r.R9:x16} R10={r.R10:x16} R11={r.R11:x16}",
            $"R12={r.R12:x16} R13={r.R13:x16} R14={r.R14:x16} R15={r.R15:x16}",
            $"CR0={s.Cr0:x8} CR2={s.Cr2:x16} CR3={s.Cr3:x16} CR4={s.Cr4:x8} EFER={s.Efer:x}",
            $"CS={s.Cs.Selector:x4} SS={s.Ss.Selector:x4} DS={s.Ds.Selector:x4} GDT={s.Gdt.Base:x}/{s.Gdt.Limit:x} IDT={s.Idt.Base:x}/{s.Idt.Limit:x}",
        ];
    }
}
