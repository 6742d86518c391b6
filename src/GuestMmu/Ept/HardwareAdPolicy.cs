namespace Hypervisor.GuestMmu.Ept;

/// <summary>
/// The contract between the "hardware" that sets EPT accessed/dirty bits (the vCPUs' page walker) and
/// the bulk writers (zap, age), which run with the guest MMU lock held for write. It decides whether a
/// bulk writer may rewrite entries with plain (vector) stores or must use one atomic per entry.
/// In both policies hardware changes an entry only by compare-exchange from the present value it
/// walked (<see cref="EptPageTable.TrySetAccessedDirty"/>), never by a blind OR, so it never revives an
/// entry a writer emptied.
/// </summary>
public enum HardwareAdPolicy
{
    /// <summary>
    /// Without the MMU lock, only the accessed bit may be set (and an access-tracked entry restored), by
    /// compare-and-swap. Setting the <b>dirty</b> bit, or restoring W (a fast page fault on an MMU-writable
    /// entry), requires the guest MMU lock held for read: a write through an entry whose D is clear leaves
    /// guest mode like a write fault, takes the lock for read and sets D. A writer holding the lock for write
    /// therefore never sees D or W appear, and zaps and ages with plain vector stores. Such a store may undo
    /// an accessed bit or an access-track restore that raced with it; that only makes the page look older or
    /// fault once more (aging is a heuristic, as KVM's lockless aging accepts). It never loses a dirty bit.
    /// The default.
    /// </summary>
    DirtyUnderMmuLock,

    /// <summary>
    /// Hardware sets accessed and dirty bits, and the fast page fault restores W, at any time without any
    /// lock (KVM's model). A zap then exchanges atomically every present entry that could still gain a dirty
    /// bit (W or MMU-writable set, D clear), as KVM does for sptes with volatile bits; other entries are still
    /// cleared with plain stores. Aging clears the accessed bit with an atomic AND (access tracking: one
    /// compare-exchange, no retry). Correct with vCPUs running, but a clean writable zap costs one locked
    /// instruction per entry (about 15× slower than the default in the benchmarks).
    /// </summary>
    Lockless,
}
