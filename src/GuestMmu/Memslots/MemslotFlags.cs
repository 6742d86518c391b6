namespace Hypervisor.GuestMmu.Memslots;

/// <summary>
/// Flags of a memslot, with the bit values of KVM's <c>struct kvm_userspace_memory_region.flags</c> so that
/// a VMM can pass them to <c>/dev/kvm</c> unchanged.
/// </summary>
[Flags]
public enum MemslotFlags : uint
{
    /// <summary>An ordinary read/write slot.</summary>
    None = 0,

    /// <summary>
    /// <c>KVM_MEM_LOG_DIRTY_PAGES</c> (bit 0): guest writes are logged per page. The only flag an existing slot
    /// may change; turning it on means the MMU must write-protect (and split) the slot's sptes.
    /// </summary>
    LogDirtyPages = 1u << 0,

    /// <summary>
    /// <c>KVM_MEM_READONLY</c> (bit 1): guest writes exit to the VMM as MMIO instead of being mapped. Fixed
    /// for the slot's lifetime.
    /// </summary>
    ReadOnly = 1u << 1,
}
