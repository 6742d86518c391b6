namespace Hypervisor.Vmm.Machine;

/// <summary>The rule a <see cref="VmOptions"/> value broke (<see cref="VmOptionsException.Rule"/>).</summary>
public enum VmOptionRule
{
    /// <summary>Guest RAM is a multiple of 4 KiB from <see cref="VmOptions.MinMemoryBytes"/> to <see cref="VmOptions.MaxMemoryBytes"/>.</summary>
    MemorySize,

    /// <summary>The vCPU count is 1 to <see cref="VmOptions.MaxCpuCount"/>.</summary>
    CpuCount,

    /// <summary>The host fork interval is from 0 to 1 hour.</summary>
    HostForkInterval,

    /// <summary>The instruction limit is 0 (none) or positive.</summary>
    InstructionLimit,

    /// <summary>The timeout is positive.</summary>
    Timeout,

    /// <summary>Instruction limits, host forks, a host memory limit and a dirty tracking policy need the emulated accelerator (kvm's RAM is outside the simulated host).</summary>
    EmulatedOnly,

    /// <summary>Host memory is a multiple of 4 KiB from <see cref="VmOptions.MinHostMemoryBytes"/> to the machine's RAM.</summary>
    HostMemorySize,

    /// <summary>Swap, the LRU policy, secondary aging off and swap fault injection need a host memory limit.</summary>
    NeedsHostMemory,

    /// <summary>The swap error rate is a probability from 0 to below 1.</summary>
    SwapErrorRate,

    /// <summary>The LRU policy is a member of <see cref="Hypervisor.HostMm.Reclaim.LruPolicy"/>.</summary>
    LruPolicy,

    /// <summary>The swap options break a swap rule (size, readahead, fault injection).</summary>
    Swap,

    /// <summary>The dirty tracking policy is a defined <see cref="Hypervisor.GuestMmu.Mmu.DirtyTrackingPolicy"/>.</summary>
    DirtyTracking,

    /// <summary>
    /// Several VMs on one host: at least one, and together they fit the simulated host's largest RAM
    /// (<see cref="HostMachine.MaxVmCount(ulong, int?)"/>); they need the emulated accelerator.
    /// </summary>
    VmCount,

    /// <summary>
    /// KSM: pages_to_scan from 1 to <see cref="VmOptions.MaxKsmPagesToScan"/>, sleep from 0 to
    /// <see cref="VmOptions.MaxKsmSleepMilliseconds"/>; on kvm the real kernel's KSM must be writable.
    /// </summary>
    Ksm,

    /// <summary>
    /// NUMA: the host has 1 to <see cref="VmOptions.MaxNumaNodes"/> nodes, the vCPUs' home node is one of them, and both
    /// need the emulated accelerator.
    /// </summary>
    Numa,

    /// <summary>
    /// Transparent huge pages: the mode is one of <see cref="Hypervisor.HostMm.ThpMode"/>'s, and anything but Never needs
    /// the emulated accelerator (the real kernel's THP is not the simulated host's).
    /// </summary>
    Thp,

    /// <summary>The JIT threshold is at least 1 (a block compiles on its first run at 1).</summary>
    JitThreshold,
}
