using Hypervisor.GuestMmu.Mmu;

namespace Hypervisor.GuestMmu.Walker;

/// <summary>
/// A guest access the host refused (KVM's <c>KVM_EXIT_MEMORY_FAULT</c>): the memslot covers the gpa but its host mapping
/// is missing or forbids the access (a write to a read-only host mapping, SEGV_ACCERR; or an unmapped range, SEGV_MAPERR).
/// The VMM resolves it (restores the mapping or its permission, or waits for whoever changed it) and runs the vCPU again,
/// which restarts the faulting instruction.
/// </summary>
/// <param name="Gpa">The guest-physical address of the access.</param>
/// <param name="Access">What the access was (a write for a write to a read-only host mapping).</param>
/// <param name="SlotId">The memslot that covers <paramref name="Gpa"/>.</param>
public readonly record struct MemoryFault(Gpa Gpa, EptAccess Access, int SlotId)
{
    /// <inheritdoc />
    public override string ToString() => $"{Access.ToString().ToLowerInvariant()} at gpa 0x{Gpa.Value:x} (memslot {SlotId}) refused by the host mapping";
}
