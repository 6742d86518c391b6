using Hypervisor.GuestMmu.Mmu;
using Hypervisor.GuestMmu.Walker;
using Hypervisor.Vmm.Cpu;
using Hypervisor.Vmm.Devices;

namespace Hypervisor.Vmm.Machine;

/// <summary>The outcome of a VM run and what every mechanism counted during it.</summary>
public sealed record VmRunResult
{
    /// <summary>How the run ended.</summary>
    public required VmStopKind Kind { get; init; }

    /// <summary>One line (or, for faults, the register dump) saying why.</summary>
    public required string Detail { get; init; }

    /// <summary>
    /// The QEMU-style exit status of the run: <c>(value&lt;&lt;1)|1</c> for a value written to the debug-exit port (as
    /// QEMU's isa-debug-exit returns it), 0 for ACPI power-off or HLT; 3 when the VM broke (triple fault, internal
    /// error) and 4 at a limit, which QEMU has no equivalent for. <c>hv run</c> reports it and returns
    /// <see cref="GuestExitCode"/> instead when there is one.
    /// </summary>
    public required int ExitStatus { get; init; }

    /// <summary>
    /// The guest's own exit code: the value it wrote to the debug-exit port 0xF4 (so <see cref="ExitStatus"/> is
    /// <c>(code&lt;&lt;1)|1</c>), 0 for ACPI power-off or HLT; null when the VM broke or hit a limit. This is what
    /// <c>hv run</c> returns when it is not null.
    /// </summary>
    public required int? GuestExitCode { get; init; }

    /// <summary>Wall-clock time spent running guest code.</summary>
    public required TimeSpan Elapsed { get; init; }

    /// <summary>The boot vCPU's interpreter counters.</summary>
    public required CpuStats Cpu { get; init; }

    /// <summary>The secondary MMU's counters.</summary>
    public required TdpMmuStats Mmu { get; init; }

    /// <summary>The boot vCPU's TLB counters.</summary>
    public required TlbStats Tlb { get; init; }

    /// <summary>The boot vCPU's page-walk counters.</summary>
    public required WalkerStats Walker { get; init; }

    /// <summary>Snapshots the host forked under the running guest (<see cref="VmOptions.HostForkInterval"/>).</summary>
    public long HostForks { get; init; }

    /// <summary>Stores that hit pages holding decoded code.</summary>
    public required long CodePageInvalidations { get; init; }

    /// <summary>Guest instructions per second, in millions.</summary>
    public double Mips => Elapsed.TotalSeconds <= 0 ? 0 : Cpu.Instructions / Elapsed.TotalSeconds / 1e6;

    /// <summary>Fraction of TLB lookups that hit.</summary>
    public double TlbHitRate => Tlb.Hits + Tlb.Misses == 0 ? 0 : (double)Tlb.Hits / (Tlb.Hits + Tlb.Misses);

    /// <summary>The guest's own exit code for a device's stop request: the debug-exit value, or 0 for power-off.</summary>
    /// <param name="stop">The request.</param>
    /// <returns><c>(status - 1) / 2</c> for a debug-exit stop, 0 for ACPI power-off.</returns>
    internal static int GuestExitCodeOf(VmStop stop) =>
        stop.Reason == VmStopReason.Shutdown ? (int)((uint)stop.ExitStatus >> 1) : 0;
}
