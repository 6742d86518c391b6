namespace Hypervisor.Vmm.Cpu;

/// <summary>Why <see cref="X86Cpu.Run"/> returned.</summary>
public enum CpuExitReason
{
    /// <summary>The instruction budget ran out; the vCPU can be run again.</summary>
    BudgetExhausted,

    /// <summary>A device asked the VM to stop (debug exit, power-off): see the VM's stop signal.</summary>
    StopRequested,

    /// <summary>HLT with nothing that could wake the vCPU (no interrupt source is emulated).</summary>
    Halted,

    /// <summary>An exception could not be delivered even as a double fault: the machine shut down.</summary>
    TripleFault,

    /// <summary>The VM cannot continue; <see cref="CpuExit.Detail"/> says why.</summary>
    InternalError,
}
