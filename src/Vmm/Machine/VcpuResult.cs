using Hypervisor.Vmm.Accel;

namespace Hypervisor.Vmm.Machine;

/// <summary>One vCPU's part of a <see cref="VmRunResult"/>.</summary>
/// <param name="Id">The vCPU's id.</param>
/// <param name="Counters">What it counted.</param>
/// <param name="Registers">Its registers when the run ended; null in a <see cref="Vm.Progress"/> snapshot of a running VM.</param>
public sealed record VcpuResult(int Id, VcpuCounters Counters, RegisterSnapshot? Registers);
