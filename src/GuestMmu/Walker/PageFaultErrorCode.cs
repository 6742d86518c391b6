namespace Hypervisor.GuestMmu.Walker;

/// <summary>The x86 #PF error code the walker reports (pushed on the guest's stack; CR2 gets the faulting address).</summary>
[Flags]
public enum PageFaultErrorCode : uint
{
    /// <summary>No bit set: a read by supervisor code of a not-present page.</summary>
    None = 0,

    /// <summary>Bit 0: the fault was a protection violation (every entry was present); clear for a not-present entry.</summary>
    Present = 1 << 0,

    /// <summary>Bit 1: the access was a write.</summary>
    Write = 1 << 1,

    /// <summary>Bit 2: the access was a user-mode access (CPL 3, not an implicit supervisor access).</summary>
    User = 1 << 2,

    /// <summary>Bit 3: a reserved bit was set in a present paging-structure entry.</summary>
    Reserved = 1 << 3,

    /// <summary>Bit 4: the access was an instruction fetch and EFER.NXE or CR4.SMEP is set.</summary>
    InstructionFetch = 1 << 4,
}
