namespace Hypervisor.GuestMmu.Memslots;

/// <summary>What a <see cref="MemslotSet.SetRegion"/> call did (KVM's <c>enum kvm_mr_change</c>, plus no-op).</summary>
public enum MemslotChangeKind
{
    /// <summary>Nothing changed: an identical request, or a delete of a slot that does not exist. No generation bump.</summary>
    None,

    /// <summary><c>KVM_MR_CREATE</c>: a new slot id was installed.</summary>
    Created,

    /// <summary><c>KVM_MR_DELETE</c>: the slot was removed. Every spte of the old slot must be zapped.</summary>
    Deleted,

    /// <summary>
    /// <c>KVM_MR_MOVE</c>: the slot got a new base guest-physical address (and maybe new flags). Every spte of
    /// the old slot must be zapped; the new range faults in afresh.
    /// </summary>
    Moved,

    /// <summary><c>KVM_MR_FLAGS_ONLY</c>: only <see cref="MemslotFlags.LogDirtyPages"/> changed.</summary>
    FlagsChanged,
}
