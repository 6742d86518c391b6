namespace Hypervisor.Vmm.Cpu;

/// <summary>The outcome of one <see cref="X86Cpu.Run"/> call.</summary>
/// <param name="Reason">Why the run returned.</param>
/// <param name="Detail">One line for the report (empty when the budget ran out).</param>
public readonly record struct CpuExit(CpuExitReason Reason, string Detail);
