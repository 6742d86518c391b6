using Hypervisor.GuestMmu.Mmu;
using Hypervisor.GuestMmu.Walker;
using Hypervisor.Vmm.Accel;
using Hypervisor.Vmm.Cpu;

namespace Hypervisor.Vmm.Machine;

/// <summary>The outcome of a VM run on either accelerator, the state of every vCPU, and what every mechanism counted.</summary>
public sealed record VmRunResult
{
    /// <summary>The accelerator the VM ran on.</summary>
    public required AcceleratorKind Accelerator { get; init; }

    /// <summary>How the run ended.</summary>
    public required VmStopKind Kind { get; init; }

    /// <summary>One line saying why (the registers are in <see cref="Registers"/>).</summary>
    public required string Detail { get; init; }

    /// <summary>The accelerator's own name for an internal error when it has several (kvm: FailEntry, InternalError, UnhandledExit).</summary>
    public string? Cause { get; init; }

    /// <summary>
    /// The QEMU-style exit status of the run (<see cref="VmExitStatus.Of"/>): <c>(value&lt;&lt;1)|1</c> for a value written
    /// to the debug-exit port, 0 for ACPI power-off or a guest reset, 5 for a halt nothing can wake; 3 when the VM broke and 4 at a limit.
    /// </summary>
    public required int ExitStatus { get; init; }

    /// <summary>How the guest asked to stop when <see cref="Kind"/> is <see cref="VmStopKind.GuestExit"/> (debug exit, power-off, reset); else null.</summary>
    public Devices.VmStopReason? StopReason { get; init; }

    /// <summary>The guest's own exit code (<see cref="VmExitStatus.GuestExitCodeOf"/>); null when the VM broke or hit a limit.</summary>
    public required int? GuestExitCode { get; init; }

    /// <summary>The exit code of <c>hv run</c>: <see cref="GuestExitCode"/> when there is one, else <see cref="ExitStatus"/>.</summary>
    public int ExitCode => VmExitStatus.ExitCode(GuestExitCode, ExitStatus);

    /// <summary>Wall-clock time spent running guest code (so far, in a progress snapshot).</summary>
    public required TimeSpan Elapsed { get; init; }

    /// <summary>Every vCPU, index = vCPU id.</summary>
    public required IReadOnlyList<VcpuResult> Vcpus { get; init; }

    /// <summary>The boot vCPU (id 0).</summary>
    public VcpuResult BootVcpu => Vcpus[0];

    /// <summary>The boot vCPU's registers when the run ended; null while running.</summary>
    public RegisterSnapshot? Registers => BootVcpu.Registers;

    /// <summary>The interpreter counters of every vCPU together (zero on kvm).</summary>
    public CpuStats Cpu => Vcpus.Skip(1).Aggregate(BootVcpu.Counters.Interpreter, (sum, vcpu) => sum + vcpu.Counters.Interpreter);

    /// <summary>The TLB counters of every vCPU together (zero on kvm).</summary>
    public TlbStats Tlb => Vcpus.Skip(1).Aggregate(BootVcpu.Counters.Tlb, (sum, vcpu) => sum + vcpu.Counters.Tlb);

    /// <summary>The page-walk counters of every vCPU together (zero on kvm).</summary>
    public WalkerStats Walker => Vcpus.Skip(1).Aggregate(BootVcpu.Counters.Walker, (sum, vcpu) => sum + vcpu.Counters.Walker);

    /// <summary>The secondary MMU's counters (zero on kvm, whose EPT is the host kernel's).</summary>
    public TdpMmuStats Mmu { get; init; }

    /// <summary>Snapshots the host forked under the running guest (<see cref="VmOptions.HostForkInterval"/>).</summary>
    public long HostForks { get; init; }

    /// <summary>The host-memory counters (reclaim, swap, resident and swapped pages); null unless the VM ran under <see cref="VmOptions.HostMemoryBytes"/>.</summary>
    public HostMemorySnapshot? HostMemory { get; init; }

    /// <summary>The KSM counters (host-wide and this VM's process); null unless the VM ran emulated under <see cref="VmOptions.Ksm"/>.</summary>
    public KsmSnapshot? Ksm { get; init; }

    /// <summary>The DMA engine's counters; null unless the VM ran with one (<see cref="VmOptions.DmaCache"/>).</summary>
    public Devices.Dma.DmaEngineCounters? Dma { get; init; }

    /// <summary>Stores that hit pages holding decoded code (zero on kvm).</summary>
    public long CodePageInvalidations { get; init; }

    /// <summary>Guest instructions per second, in millions (0 on kvm, which counts no instructions).</summary>
    public double Mips => Elapsed.TotalSeconds <= 0 ? 0 : Cpu.Instructions / Elapsed.TotalSeconds / 1e6;

    /// <summary>Fraction of TLB lookups that hit.</summary>
    public double TlbHitRate => Tlb.Hits + Tlb.Misses == 0 ? 0 : (double)Tlb.Hits / (Tlb.Hits + Tlb.Misses);
}
