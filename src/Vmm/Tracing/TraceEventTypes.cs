namespace Hypervisor.Vmm.Tracing;

/// <summary>
/// The kinds of event <c>hv</c> records, named after the KVM and mm tracepoints (or kernel functions) they model, as
/// the trace logger names them (<see cref="Machine.LoggingMmuTrace"/>).
/// </summary>
public static class TraceEventTypes
{
    /// <summary><c>kvm_page_fault</c>: an EPT violation handled, from exit to resolution.</summary>
    public static readonly TraceEventType KvmPageFault = new("kvm_page_fault", "kvm", TracePhase.Complete, ["gpa", "retries", "pfn"], hexMask: 0b101, textNames: ["access", "outcome"]);

    /// <summary><c>kvm_unmap_hva_range</c>: the secondary MMU's zap (and TLB shootdown) inside a notifier start.</summary>
    public static readonly TraceEventType KvmUnmapHvaRange = new("kvm_unmap_hva_range", "kvm", TracePhase.Complete, ["start", "end", "zapped"], hexMask: 0b011, textNames: ["event"]);

    /// <summary><c>kvm_flush_remote_tlbs</c>: a TLB shootdown to every vCPU, until none can use an old translation.</summary>
    public static readonly TraceEventType KvmFlushRemoteTlbs = new("kvm_flush_remote_tlbs", "kvm", TracePhase.Complete);

    /// <summary><c>kvm_age_hva</c>: clear_(flush_)young over a range.</summary>
    public static readonly TraceEventType KvmAgeHva = new("kvm_age_hva", "kvm", TracePhase.Instant, ["start", "end", "young"], hexMask: 0b011);

    /// <summary><c>kvm_test_age_hva</c>: test_young of one page.</summary>
    public static readonly TraceEventType KvmTestAgeHva = new("kvm_test_age_hva", "kvm", TracePhase.Instant, ["hva", "young"], hexMask: 0b001);

    /// <summary><c>kvm_set_spte_hva</c>: the historical change_pte.</summary>
    public static readonly TraceEventType KvmSetSpteHva = new("kvm_set_spte_hva", "kvm", TracePhase.Instant, ["hva", "hit"], hexMask: 0b001);

    /// <summary><c>kvm_mmu_notifier_release</c>: the process exited.</summary>
    public static readonly TraceEventType KvmMmuNotifierRelease = new("kvm_mmu_notifier_release", "kvm", TracePhase.Instant, ["zapped"]);

    /// <summary>
    /// <c>mmu_notifier_invalidate_range</c>: from <c>mmu_notifier_invalidate_range_start</c> to the matching end, the
    /// window in which the secondary MMU may create no mapping of the range.
    /// </summary>
    public static readonly TraceEventType MmuNotifierInvalidateRange = new("mmu_notifier_invalidate_range", "mm", TracePhase.Complete, ["start", "end", "subscribers"], hexMask: 0b011, textNames: ["event"]);

    /// <summary><c>tlb_flush</c>: the host flushed its CPU TLB (and the secondary TLBs) for a range.</summary>
    public static readonly TraceEventType TlbFlush = new("tlb_flush", "mm", TracePhase.Instant, ["start", "end"], hexMask: 0b011);

    /// <summary><c>mm_vmscan_kswapd</c>: one kswapd step (wake to sleep): pages reclaimed, swapped out and scanned.</summary>
    public static readonly TraceEventType KswapdStep = new("mm_vmscan_kswapd", "vmscan", TracePhase.Complete, ["reclaimed", "pswpout", "scanned"]);

    /// <summary><c>ksm_scan</c>: one ksmd batch: pages scanned, merges made, pages shared afterwards.</summary>
    public static readonly TraceEventType KsmScan = new("ksm_scan", "ksm", TracePhase.Complete, ["scanned", "merges", "pages_sharing"]);

    /// <summary><c>host_fork</c>: the host forked the VM's process and reaped the child.</summary>
    public static readonly TraceEventType HostFork = new("host_fork", "mm", TracePhase.Complete);

    /// <summary><c>swap_writepage</c>: one swap write request, a run of contiguous slots (pageout of a reclaim batch): its pages, and the bytes that went to the device (zero-filled pages in it are kept by the swap area without device I/O).</summary>
    public static readonly TraceEventType SwapWrite = new("swap_writepage", "swap", TracePhase.Complete, ["slot", "pages", "bytes"], textNames: ["result"]);

    /// <summary><c>swap_readpage</c>: one swap read request, a run of contiguous slots (the faulting page and its read-ahead): its pages, and the bytes of the pages the device held (zero-filled ones come from the swap area without device I/O).</summary>
    public static readonly TraceEventType SwapRead = new("swap_readpage", "swap", TracePhase.Complete, ["slot", "pages", "bytes"], textNames: ["result"]);

    /// <summary><c>ksm_merge_one_page</c>: one page's mapping replaced by the KSM page (or the zero page), from the invalidation's start to the end of the merge.</summary>
    public static readonly TraceEventType KsmMerge = new("ksm_merge_one_page", "ksm", TracePhase.Complete, ["hva", "pfn", "kpfn"], hexMask: 0b111);

    /// <summary><c>mm_migrate_pages</c>: one migration attempt of a page (or a huge page), node from → to, and its result.</summary>
    public static readonly TraceEventType MigratePage = new("mm_migrate_pages", "migrate", TracePhase.Complete, ["pfn", "from", "to"], hexMask: 0b001, textNames: ["result", "size"]);

    /// <summary><c>split_huge_pmd</c>: a huge leaf split into 512 PTEs.</summary>
    public static readonly TraceEventType HugeSplit = new("split_huge_pmd", "thp", TracePhase.Complete, ["hva"], hexMask: 0b001);

    /// <summary><c>mm_collapse_huge_page</c>: khugepaged's collapse of a 2 MiB range past its first scan, and its result.</summary>
    public static readonly TraceEventType HugeCollapse = new("mm_collapse_huge_page", "thp", TracePhase.Complete, ["hva"], hexMask: 0b001, textNames: ["result"]);

    /// <summary><c>demo_step</c>: one step of <c>hv demo host</c>'s script, from its start to its end (the audit excluded).</summary>
    public static readonly TraceEventType DemoStep = new("demo_step", "demo", TracePhase.Complete, textNames: ["step"]);

    /// <summary>Counter track <c>memory</c> of a VM's process: pages resident, swapped out and merged by KSM.</summary>
    public static readonly TraceEventType MemoryCounter = new("memory", "counter", TracePhase.Counter, ["resident", "swapped", "merged"]);

    /// <summary>Counter track <c>sptes</c> of a VM: present EPT leaves.</summary>
    public static readonly TraceEventType SptesCounter = new("sptes", "counter", TracePhase.Counter, ["present"]);

    /// <summary>Counter track <c>swap</c> of the host: pages swapped in and out so far.</summary>
    public static readonly TraceEventType SwapCounter = new("swap", "counter", TracePhase.Counter, ["pswpin", "pswpout"]);

    /// <summary>Counter track <c>thp</c> of a VM's process: huge leaves mapped by the host.</summary>
    public static readonly TraceEventType ThpCounter = new("thp", "counter", TracePhase.Counter, ["huge_leaves"]);

    /// <summary>Counter track <c>ksm</c> of the host: KSM pages shared and the mappings sharing them.</summary>
    public static readonly TraceEventType KsmCounter = new("ksm", "counter", TracePhase.Counter, ["pages_shared", "pages_sharing"]);

    /// <summary>Counter track <c>migrate</c> of the host: pages migrated and failed so far.</summary>
    public static readonly TraceEventType MigrateCounter = new("migrate", "counter", TracePhase.Counter, ["pgmigrate_success", "pgmigrate_fail"]);
}
