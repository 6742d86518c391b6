namespace Hypervisor.Vmm.Cpu;

/// <summary>
/// The VM cannot continue (a walk error, a real-mode switch the interpreter does not support): unwinds to the
/// block loop, which stops the vCPU with <see cref="CpuExitReason.InternalError"/> and this message.
/// </summary>
internal sealed class VmFailureException(string message) : Exception(message);
