namespace Hypervisor.GuestMmu.Memslots;

/// <summary>Which memslot rule a request broke; carried by <see cref="MemslotException"/>.</summary>
public enum MemslotError
{
    /// <summary>The flags contain bits other than <see cref="MemslotFlags.ReadOnly"/> and <see cref="MemslotFlags.LogDirtyPages"/>.</summary>
    UnknownFlags,

    /// <summary>The size is not a multiple of the page size.</summary>
    UnalignedSize,

    /// <summary>The guest-physical address is not page-aligned.</summary>
    UnalignedGuestPhysicalAddress,

    /// <summary>The userspace (host virtual) address is not page-aligned.</summary>
    UnalignedUserspaceAddress,

    /// <summary>The userspace range wraps or ends beyond the 47-bit user address space.</summary>
    UserspaceRangeOutOfBounds,

    /// <summary>The slot id is negative or not below <see cref="MemslotSet.MaxSlots"/>.</summary>
    SlotIdOutOfRange,

    /// <summary>The guest-physical range wraps or ends beyond the 52-bit guest-physical address space.</summary>
    GuestPhysicalRangeOutOfBounds,

    /// <summary>The slot has more pages than <see cref="MemslotSet.MaxPagesPerSlot"/>.</summary>
    TooManyPages,

    /// <summary>A slot that is created or modified has no backing mm.</summary>
    MissingMm,

    /// <summary>The guest-physical range overlaps another slot.</summary>
    Overlap,

    /// <summary>An existing slot was given a different size.</summary>
    SizeChange,

    /// <summary>An existing slot was given a different userspace address.</summary>
    UserspaceAddressChange,

    /// <summary>An existing slot was given a different backing mm.</summary>
    MmChange,

    /// <summary>An existing slot would turn <see cref="MemslotFlags.ReadOnly"/> on or off.</summary>
    ReadOnlyChange,

    /// <summary>A conversion was asked for a guest frame outside the slot.</summary>
    GfnOutsideSlot,

    /// <summary>A conversion was asked for a host virtual address outside the slot.</summary>
    HvaOutsideSlot,
}
