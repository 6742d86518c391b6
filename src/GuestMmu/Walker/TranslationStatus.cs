namespace Hypervisor.GuestMmu.Walker;

/// <summary>How a two-dimensional translation ended.</summary>
public enum TranslationStatus
{
    /// <summary>Translated: the result carries the gpa, the host pointer and the permissions.</summary>
    Ok,

    /// <summary>The guest's own page tables refused the access: inject #PF with the error code, CR2 = the gva.</summary>
    PageFault,

    /// <summary>The address is not canonical in long mode: the caller raises #GP (or #SS for stack accesses).</summary>
    NonCanonical,

    /// <summary>The final gpa has no memslot (or a write hit a read-only memslot): the caller emulates the access as MMIO.</summary>
    EptMmio,

    /// <summary>The VM cannot go on with this access; <see cref="TranslationResult.Error"/> says why.</summary>
    Error,
}
