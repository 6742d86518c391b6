namespace Hypervisor.GuestMmu.Mmu;

/// <summary>A snapshot of the secondary MMU's counters.</summary>
public readonly record struct TdpMmuStats
{
    /// <summary>EPT violations handled.</summary>
    public long Faults { get; init; }

    /// <summary>sptes installed.</summary>
    public long Installs { get; init; }

    /// <summary>Faults that found the spte already installed by another vCPU.</summary>
    public long AlreadyMapped { get; init; }

    /// <summary>
    /// Fault restarts because an invalidation was in progress over the gfn or had completed meanwhile (or the
    /// memslots changed, or the spte compare-and-swap lost a race).
    /// </summary>
    public long Retries { get; init; }

    /// <summary>
    /// Retries that found an invalidation in progress over the faulting gfn and blocked until it ended (or the
    /// MMU was released) before restarting, instead of re-checking at once; each is also one of <see cref="Retries"/>.
    /// </summary>
    public long InvalidationWaits { get; init; }

    /// <summary>Faults that exited as MMIO (no memslot, or a write to a read-only slot).</summary>
    public long MmioExits { get; init; }

    /// <summary>Faults the host could not back.</summary>
    public long HostFaults { get; init; }

    /// <summary>Faults that installed a 2 MiB leaf over a host huge page.</summary>
    public long LargeInstalls { get; init; }

    /// <summary>KVM's <c>pages_2m</c>: present 2 MiB leaves now (a walk of the EPT's upper levels, exact when quiescent).</summary>
    public long Pages2M { get; init; }

    /// <summary>KVM's <c>pages_4k</c>: present 4 KiB leaves now.</summary>
    public long Pages4K => PresentSptes - Pages2M;

    /// <summary>Faults that could have mapped 2 MiB but found 4 KiB sptes already in the range and mapped 4 KiB.</summary>
    public long LargeFallbacks { get; init; }

    /// <summary>invalidate_range_start calls that reached this MMU.</summary>
    public long Invalidations { get; init; }

    /// <summary>sptes zapped by invalidations, release and memslot changes.</summary>
    public long Zapped { get; init; }

    /// <summary>
    /// Frames marked dirty in the host because a zapped, changed or aged spte was dirty
    /// (<see cref="DirtyTrackingPolicy.OnZap"/>; always 0 under <see cref="DirtyTrackingPolicy.OnMap"/>).
    /// </summary>
    public long DirtyPropagated { get; init; }

    /// <summary>
    /// Frames marked dirty in the host when the fault path installed a writable spte for them
    /// (<see cref="DirtyTrackingPolicy.OnMap"/>; always 0 under <see cref="DirtyTrackingPolicy.OnZap"/>).
    /// </summary>
    public long DirtyMarkedOnMap { get; init; }

    /// <summary>
    /// Dirty frames a release found outside every memslot, with no backing to hand them to. Always 0: memslot
    /// changes zap before anyone can see the new memslots; a non-zero value is a bug the auditor's tests catch.
    /// </summary>
    public long DirtyOrphaned { get; init; }

    /// <summary>Writable sptes made read-only by a memslot flags change (dirty logging turned on).</summary>
    public long WriteProtected { get; init; }

    /// <summary>Memslot deletes and moves whose old range was zapped.</summary>
    public long MemslotZaps { get; init; }

    /// <summary>Remote TLB flushes requested.</summary>
    public long TlbFlushes { get; init; }

    /// <summary>Aging calls (clear_flush_young, clear_young, test_young).</summary>
    public long AgingCalls { get; init; }

    /// <summary>Aging calls that found a young spte.</summary>
    public long YoungHits { get; init; }

    /// <summary>Legacy change_pte calls that found an spte to change.</summary>
    public long ChangePteHits { get; init; }

    /// <summary>Legacy change_pte calls that found nothing (the spte was already zapped by the enclosing start).</summary>
    public long ChangePteMisses { get; init; }

    /// <summary>Present leaf sptes now.</summary>
    public long PresentSptes { get; init; }

    /// <summary>EPT table pages now.</summary>
    public long TablePages { get; init; }

    /// <summary>Invalidation sequence (bumped by every end).</summary>
    public long InvalidateSequence { get; init; }

    /// <summary>Invalidations in progress now.</summary>
    public int InProgress { get; init; }

    /// <summary>True once the MMU was released.</summary>
    public bool Released { get; init; }
}
