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

    /// <summary>Runs <paramref name="image"/> on KVM and returns the exit status (the guest's).</summary>
    public static int Run(ElfImage image, string name, VmOptions options, CliContext context)
    {
        options.Validate();
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

        var status = result.Kind switch
        {
            KvmStopKind.DeviceStop => result.ExitStatus,
            KvmStopKind.Halted => 0,
            KvmStopKind.Timeout or KvmStopKind.Cancelled => 4,
            _ => 3,
        };
        var c = CultureInfo.InvariantCulture;
        var writer = ReportWriter.Create(context, plain: true);
        writer.Title($"hv run {name} --accel kvm: {result.Kind}, exit status {status}");
        if (result.Kind != KvmStopKind.DeviceStop)
        {
            writer.Paragraph(result.Detail);
        }

        var table = new ReportTable(new ReportColumn("figure"), new ReportColumn("value", AlignRight: true), new ReportColumn("what it counts"));
        table.AddRow("boot", protocol.ToString(), $"{options.MemoryBytes >> 20} MiB, {options.CpuCount} vCPU(s), cmdline \"{options.CommandLine}\"");
        table.AddRow("time", $"{result.Elapsed.TotalMilliseconds.ToString("N1", c)} ms", "in KVM_RUN and device exits");
        table.AddRow("VM exits", result.Exits.ToString("N0", c), $"{result.PortIoExits.ToString("N0", c)} port I/O, {result.MmioExits.ToString("N0", c)} MMIO");
        table.AddRow("last RIP", $"0x{result.Rip:x}", "where the vCPU stopped");
        writer.Table(table);
        return status;
    }
}
