namespace Hypervisor.Vmm.Cpu;

/// <summary>
/// The VM cannot continue (a walk error, a real-mode switch the interpreter does not support): unwinds to the
/// block loop, which stops the vCPU with <see cref="CpuExitReason.InternalError"/> and this message. Constructed and
/// thrown only by <c>X86Cpu.FailVm</c>.
/// </summary>
internal sealed class VmFailureException(string message) : Exception(message);
