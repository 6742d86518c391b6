using Hypervisor.Vmm.Machine;

namespace Hypervisor.Vmm.Accel;

/// <summary>Why one <see cref="IVcpu.Run"/> returned.</summary>
/// <param name="Kind">How the vCPU stopped.</param>
/// <param name="Detail">One line on the stop: the device request, the fault, the exit reason and its codes, or the limit.</param>
/// <param name="Cause">The accelerator's own name for an <see cref="VmStopKind.InternalError"/> when it has several
/// (kvm: FailEntry, InternalError or UnhandledExit); null otherwise.</param>
public readonly record struct VcpuExit(VmStopKind Kind, string Detail, string? Cause = null);
