using Hypervisor.Vmm.Boot;
using Hypervisor.Vmm.Devices;
using Hypervisor.Vmm.Machine;

namespace Hypervisor.Vmm.Demo.Swap;

/// <summary>
/// <c>hv demo swap --guest linux</c>: Debian's Linux kernel (built by <c>make -C guests linux</c>) boots in guest RAM
/// several times the VM process's host limit and its initramfs runs memtest over most of that RAM as an ordinary Linux
/// process; the host swaps the guest's pages out and in underneath, audited after every reclaim batch, and Linux never
/// notices: memtest's word-by-word check passes.
/// </summary>
public sealed partial class SwapDemo
{
    /// <summary>Guest RAM Linux keeps for itself (kernel, page cache, initramfs) beyond memtest's region.</summary>
    public const ulong LinuxReserveBytes = 128UL << 20;

    /// <summary>Runs the Linux guest's memtest under the host limit.</summary>
    /// <exception cref="FileNotFoundException">The Linux guest has not been built.</exception>
    public LinuxSwapResult RunLinux()
    {
        var (kernel, initrd) = GuestImageLocator.FindLinux(_options.GuestsFolder);
        var guestBytes = _options.MemtestGuestBytes;
        var hostBytes = _options.MemtestHostBytes;
        var mib = (int)((guestBytes - LinuxReserveBytes) >> 20);
        var linux = new LinuxGuestConsole();
        var console = new ConsoleLineWatcher(linux.OnLine);

        Volatile.Write(ref _stage, $"Linux boots in {guestBytes >> 20} MiB of guest RAM under a host limit of {hostBytes >> 20} MiB; its memtest fills {mib} MiB");
        var options = BaseOptions(guestBytes, hostBytes, secondaryAging: true, $"console=ttyS0 memtest.mib={mib}") with
        {
            InitialRamDisk = InitialRamDisk.Load(initrd),
        };
        using var vm = new Vm(options, new GuestConsole(console));
        vm.Boot(ElfImage.Parse(File.ReadAllBytes(kernel)));
        var auditor = _options.AuditEveryBatch ? new BatchAuditor(vm, MaxViolationsKept) : null;
        vm.Emulated!.Cpus[0].SliceInstructions = AuditSliceInstructions;
        var run = RunShown(vm);
        auditor?.AuditNow();

        var ram = (GuestRam)vm.Ram;
        var counts = vm.Process!.PageTable.CountEntries(ram.Base, ram.Base + guestBytes);
        return new LinuxSwapResult
        {
            GuestBytes = guestBytes,
            HostLimitBytes = hostBytes,
            MemtestMib = mib,
            Stop = run.Kind,
            GuestExitCode = run.GuestExitCode,
            GuestVerdict = linux.Verdict ?? run.Detail,
            UserlandLines = linux.UserlandLines,
            Banner = linux.Banner,
            Audits = auditor?.Audits ?? 0,
            AuditViolations = auditor?.Violations ?? [],
            ResidentAtExit = counts.Present,
            SwappedAtExit = counts.Swap,
            Reclaim = vm.Host!.Reclaim.Stats,
            SwapDevice = DescribeSwap(vm),
            Instructions = run.Cpu.Instructions,
            Elapsed = run.Elapsed,
        };
    }
}
