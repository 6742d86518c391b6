using Hypervisor.GuestMmu.Mmu;
using Hypervisor.GuestMmu.Walker;
using Hypervisor.Vmm.Cpu;

namespace Hypervisor.Vmm.Machine;

/// <summary>The outcome of a VM run and what every mechanism counted during it.</summary>
public sealed record VmRunResult
{
    /// <summary>How the run ended.</summary>
    public required VmStopKind Kind { get; init; }

    /// <summary>One line (or, for faults, the register dump) saying why.</summary>
    public required string Detail { get; init; }

    /// <summary>The exit status <c>hv run</c> returns: the guest's (QEMU's <c>(value&lt;&lt;1)|1</c> for the debug-exit port, 0 for power-off or HLT), 3 when the VM broke, 4 at a limit.</summary>
    public required int ExitStatus { get; init; }

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

    /// <summary>Stores that hit pages holding decoded code.</summary>
    public required long CodePageInvalidations { get; init; }

    /// <summary>Guest instructions per second, in millions.</summary>
    public double Mips => Elapsed.TotalSeconds <= 0 ? 0 : Cpu.Instructions / Elapsed.TotalSeconds / 1e6;

    /// <summary>Fraction of TLB lookups that hit.</summary>
    public double TlbHitRate => Tlb.Hits + Tlb.Misses == 0 ? 0 : (double)Tlb.Hits / (Tlb.Hits + Tlb.Misses);
}
