namespace Hypervisor.Vmm.Cpu;

/// <summary>What a VM with several vCPUs asks of one between runs: whether a halted vCPU has something to wake for.</summary>
public sealed partial class X86Cpu
{
    /// <summary>
    /// After a run that ended halted: true when the vCPU now has an event it can take — an NMI it is not blocking, or
    /// with IF set an interrupt above its processor priority — so it resumes after its HLT and takes it at the first
    /// block boundary. Call on the vCPU's thread while it is not running.
    /// </summary>
    public bool CanWakeFromHalt =>
        (_apic.NmiPending && !_nmiBlocked) || ((_rflags & FlagIf) != 0 && _apic.HighestDeliverable >= 0);
}
