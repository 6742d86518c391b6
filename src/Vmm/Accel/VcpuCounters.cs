using Hypervisor.GuestMmu.Walker;
using Hypervisor.Vmm.Cpu;

namespace Hypervisor.Vmm.Accel;

/// <summary>What one vCPU counted: device accesses on both accelerators, and each accelerator's own figures.</summary>
public readonly record struct VcpuCounters
{
    /// <summary>Returns from KVM_RUN to user space (kvm); 0 on the interpreter, which never leaves user space.</summary>
    public long Exits { get; init; }

    /// <summary>Port I/O: exits (kvm) or instructions (interpreter).</summary>
    public long PortIo { get; init; }

    /// <summary>MMIO accesses sent to the device bus.</summary>
    public long Mmio { get; init; }

    /// <summary>The interpreter's counters (zero on kvm).</summary>
    public CpuStats Interpreter { get; init; }

    /// <summary>The vCPU's soft-TLB counters (zero on kvm).</summary>
    public TlbStats Tlb { get; init; }

    /// <summary>The vCPU's two-dimensional page-walk counters (zero on kvm).</summary>
    public WalkerStats Walker { get; init; }
}
