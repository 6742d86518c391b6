using System.Globalization;
using Hypervisor.Vmm.Boot;
using Hypervisor.Vmm.Cli.Output;
using Hypervisor.Vmm.Devices;
using Hypervisor.Vmm.Machine;

namespace Hypervisor.Vmm.Cli;

/// <summary>
/// <c>hv run --accel emulated</c>: boots the image on a <see cref="Vm"/>, streams the guest console (or, on a
/// terminal, shows it in a live panel beside the counters), then prints the closing report.
/// </summary>
internal static class EmulatedRun
{
    /// <summary>Runs <paramref name="image"/> and returns <c>hv run</c>'s exit code (the guest's own, see <see cref="RunCommand.ExitCode"/>).</summary>
    public static int Run(ElfImage image, string name, VmOptions options, CliContext context, bool live)
    {
        var console = live ? new GuestConsole() : new GuestConsole(context.Output);
        using var vm = new Vm(options, console);
        vm.Boot(image);
        var result = live ? LivePanel.Run(vm, name) : vm.Run();
        if (live)
        {
            context.Output.Write(console.Transcript());
        }

        Report(result, vm, name, ReportWriter.Create(context, plain: !live));
        return RunCommand.ExitCode(result.GuestExitCode, result.ExitStatus);
    }

    /// <summary>Writes the closing report of a run.</summary>
    internal static void Report(VmRunResult result, Vm vm, string name, ReportWriter writer)
    {
        var c = CultureInfo.InvariantCulture;
        var exitCode = RunCommand.ExitCode(result.GuestExitCode, result.ExitStatus);
        writer.Title($"hv run {name}: {Describe(result.Kind, result.GuestExitCode)}, exit status {exitCode}");
        if (result.Kind is not VmStopKind.GuestExit)
        {
            writer.Paragraph(result.Detail.Split(Environment.NewLine));
        }

        var table = new ReportTable(new ReportColumn("figure"), new ReportColumn("value", AlignRight: true), new ReportColumn("what it counts", Wrap: true));
        if (result.GuestExitCode is { } code)
        {
            table.AddRow("guest exit code", code.ToString(c), RunCommand.DescribeGuestExit(vm.Stop.Request, code));
        }

        table.AddRow("boot", $"{vm.Protocol}", $"{vm.Options.MemoryBytes >> 20} MiB, {vm.Options.CpuCount} vCPU(s), cmdline \"{vm.Options.CommandLine}\"");
        table.AddEmphasisedRow("instructions", result.Cpu.Instructions.ToString("N0", c), "retired by the interpreter");
        table.AddRow("time", $"{result.Elapsed.TotalMilliseconds.ToString("N1", c)} ms", "running guest code");
        table.AddEmphasisedRow("MIPS", result.Mips >= 10 ? result.Mips.ToString("N1", c) : result.Mips.ToString("G3", c), "million guest instructions per second (a short guest mostly measures first-use JIT compilation)");
        table.AddRow("decode-cache hit rate", Percent(result.Cpu.DecodeCacheHitRate), $"{result.Cpu.DecodeCacheHits.ToString("N0", c)} block lookups hit, {result.Cpu.DecodeCacheMisses.ToString("N0", c)} decoded ({result.Cpu.InstructionsDecoded.ToString("N0", c)} instructions)");
        table.AddRow("code-page invalidations", result.CodePageInvalidations.ToString("N0", c), "stores that hit a page holding decoded code");
        table.AddEmphasisedRow("EPT violations", result.Mmu.Faults.ToString("N0", c), $"{result.Mmu.Installs.ToString("N0", c)} sptes installed, {result.Mmu.Retries.ToString("N0", c)} invalidation retries ({result.Mmu.InvalidationWaits.ToString("N0", c)} waited for an invalidation to end), {result.Mmu.HostFaults.ToString("N0", c)} host faults");
        table.AddRow("sptes present", result.Mmu.PresentSptes.ToString("N0", c), $"4 KiB leaves in {result.Mmu.TablePages.ToString("N0", c)} EPT table pages");
        var ept = vm.Mmu.Ept.GetStats();
        table.AddRow(
            "sptes zapped",
            result.Mmu.Zapped.ToString("N0", c),
            $"by {result.Mmu.Invalidations.ToString("N0", c)} notifier invalidations, {result.Mmu.TlbFlushes.ToString("N0", c)} TLB shootdowns; "
            + $"{ept.WholeTableClears.ToString("N0", c)} full clean leaf tables cleared unread, {ept.EmptyTablesSkipped.ToString("N0", c)} empty ones skipped");
        if (vm.Options.HostForkInterval is not null)
        {
            table.AddEmphasisedRow("host forks", result.HostForks.ToString("N0", c), "copy-on-write snapshots of guest RAM taken by the host under the running guest");
        }

        table.AddEmphasisedRow("TLB hit rate", Percent(result.TlbHitRate), $"{result.Tlb.Hits.ToString("N0", c)} hits, {result.Tlb.Misses.ToString("N0", c)} misses, {result.Tlb.FullFlushes.ToString("N0", c)} full / {result.Tlb.NonGlobalFlushes.ToString("N0", c)} CR3 / {result.Tlb.PageFlushes.ToString("N0", c)} INVLPG flushes");
        table.AddRow("2-D walks", result.Walker.Walks.ToString("N0", c), $"{result.Walker.GuestPageFaults.ToString("N0", c)} guest #PF, {result.Walker.GuestAdUpdates.ToString("N0", c)} guest A/D and {result.Walker.EptAdUpdates.ToString("N0", c)} EPT A/D updates");
        table.AddRow("exceptions", result.Cpu.ExceptionsDelivered.ToString("N0", c), $"delivered through the IDT ({result.Cpu.PageFaults.ToString("N0", c)} page faults)");
        table.AddRow("device accesses", (result.Cpu.PortIo + result.Cpu.MmioAccesses).ToString("N0", c), $"{result.Cpu.PortIo.ToString("N0", c)} port I/O, {result.Cpu.MmioAccesses.ToString("N0", c)} MMIO");
        writer.Table(table);
    }

    private static string Describe(VmStopKind kind, int? guestExitCode) => kind switch
    {
        VmStopKind.GuestExit => $"the guest exited with code {guestExitCode}",
        VmStopKind.Halted => "the guest halted",
        VmStopKind.TripleFault => "the guest triple-faulted",
        VmStopKind.InternalError => "the VM could not continue",
        VmStopKind.InstructionLimit => "instruction limit reached",
        _ => "timed out",
    };

    private static string Percent(double fraction) => (fraction * 100).ToString("0.00", CultureInfo.InvariantCulture) + " %";
}
