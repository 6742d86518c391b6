namespace Hypervisor.GuestMmu.Ept;

/// <summary>How an aging pass learns and resets "young" (reference/kvm-mmu.md §5).</summary>
public enum AgingMode
{
    /// <summary>
    /// EPT A/D bits on: young means the accessed bit (8) is set; clearing clears it and nothing else, so
    /// the guest keeps running through the entry and "hardware" sets the bit again on the next walk.
    /// </summary>
    AccessedBit,

    /// <summary>
    /// EPT A/D bits off: hardware cannot report accesses, so every present entry that is not
    /// access-tracked counts as young, and clearing makes it access-tracked (R/W/X off, R and X saved in
    /// bits 54–55, still MMU-present) so the next access faults and restores it. A young entry that was
    /// writable is reported dirty first, because its W is dropped.
    /// </summary>
    AccessTracking,
}
