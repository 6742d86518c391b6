namespace Hypervisor.Vmm.Cpu;

/// <summary>
/// The VM cannot continue (a walk error, a real-mode switch the interpreter does not support, host memory exhausted, a
/// memory failure): unwinds to the block loop, which stops the vCPU with <see cref="Reason"/> (by default
/// <see cref="CpuExitReason.InternalError"/>) and this message. Constructed and thrown only by <c>X86Cpu.FailVm</c>.
/// </summary>
internal sealed class VmFailureException(string message, CpuExitReason reason = CpuExitReason.InternalError) : Exception(message)
{
    /// <summary>The stop the vCPU reports.</summary>
    public CpuExitReason Reason { get; } = reason;
}
