namespace Hypervisor.Vmm.Demo.Stress;

/// <summary>
/// The host mechanisms <see cref="StressDemo"/> runs under the guest, in the order its report lists them. The daemons
/// (reclaim, KSM) run on the host machine's own threads; every other kind runs on a demo thread of its own, drawing its
/// operations from the seed's <see cref="StressSchedule"/>.
/// </summary>
public enum StressMechanismKind
{
    /// <summary>kswapd and direct reclaim under the VM's memory cgroup limit, swapping to the swap device.</summary>
    Reclaim,

    /// <summary>The KSM scanner (ksmd) merging equal pages; guest writes break them copy-on-write.</summary>
    Ksm,

    /// <summary>Page migration of a 2 MiB chunk of guest RAM to the other NUMA node (<c>migrate_pages</c> of a range).</summary>
    Migration,

    /// <summary>NUMA balancing scans (PROT_NONE hinting) and the vCPUs' hinting faults that pull pages to their node.</summary>
    NumaBalancing,

    /// <summary>Transparent huge page splits (a 4 KiB mprotect inside a huge leaf).</summary>
    ThpSplit,

    /// <summary>khugepaged collapsing small pages back into huge pages.</summary>
    ThpCollapse,

    /// <summary>Fork snapshots of the VM's process: write-protect copy-on-write, held briefly, then exited.</summary>
    Fork,

    /// <summary>Storms of mprotect read-only and back over guest RAM; a guest write in the window is a memory-fault exit.</summary>
    MprotectStorm,

    /// <summary>munmap and re-mmap of a chunk of guest RAM through a memslot delete and create, the vCPUs paused.</summary>
    MemslotRemap,

    /// <summary>madvise(MADV_DONTNEED) of guest pages the guest's verifier is told about.</summary>
    DontNeed,

    /// <summary>
    /// The DMA copy engine with its ummunotify registration cache, driven from a VMM thread over buffers that every other
    /// mechanism strikes too; every copy is read back and verified.
    /// </summary>
    Dma,
}
