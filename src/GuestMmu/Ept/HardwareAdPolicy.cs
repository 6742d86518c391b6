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
    /// Hardware sets the accessed bit at any time, but sets the <b>dirty</b> bit only while holding the guest
    /// MMU lock for read (like a write fault: a write through an entry whose D is clear leaves guest mode,
    /// takes the lock for read and sets D). A writer holding the lock for write therefore sees no dirty bit
    /// appear, and zaps and ages with plain vector stores. Racing with a concurrent accessed-bit set can at
    /// worst lose that accessed bit, which only makes the page look older (aging is a heuristic, as KVM's
    /// lockless aging accepts); it never loses a dirty bit. The default.
    /// </summary>
    DirtyUnderMmuLock,

    /// <summary>
    /// Hardware sets accessed and dirty bits at any time without any lock. A zap then exchanges atomically
    /// every present entry that could still gain a dirty bit (W or MMU-writable set, D clear), as KVM does
    /// for sptes with volatile bits; other entries are still cleared with plain stores. Aging clears the
    /// accessed bit with an atomic AND (access tracking: one compare-exchange, no retry). Correct with
    /// vCPUs running, but a clean writable zap costs one locked instruction per entry.
    /// </summary>
    Lockless,
}
