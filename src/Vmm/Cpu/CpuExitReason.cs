namespace Hypervisor.Vmm.Cpu;

/// <summary>Why <see cref="X86Cpu.Run"/> returned.</summary>
public enum CpuExitReason
{
    /// <summary>The instruction budget ran out; the vCPU can be run again.</summary>
    BudgetExhausted,

    /// <summary>A device asked the VM to stop (debug exit, power-off, reset): see the VM's stop signal.</summary>
    StopRequested,

    /// <summary>HLT with nothing that could wake the vCPU (no interrupt source is emulated).</summary>
    Halted,

    /// <summary>An exception could not be delivered even as a double fault: the machine shut down.</summary>
    TripleFault,

    /// <summary>The VM cannot continue; <see cref="CpuExit.Detail"/> says why.</summary>
    InternalError,

    /// <summary>A guest access needed a page the host could not provide, even after reclaim (its memory limit is reached and swap is full).</summary>
    HostOutOfMemory,

    /// <summary>A guest page could not be read back from swap (an I/O error or a checksum mismatch); no data was returned.</summary>
    MemoryFailure,

    /// <summary>
    /// A guest access was refused by the host mapping behind its memslot (KVM's <c>KVM_EXIT_MEMORY_FAULT</c>, e.g. a write
    /// to guest RAM the VMM made read-only): RIP still points at the faulting instruction, which runs again when the vCPU
    /// is run again; <see cref="X86Cpu.LastMemoryFault"/> says which access.
    /// </summary>
    MemoryFault,
}
