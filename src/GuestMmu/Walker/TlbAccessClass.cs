namespace Hypervisor.GuestMmu.Walker;

/// <summary>
/// The access classes a <see cref="SoftTlb"/> keeps apart (QEMU's MMU indexes): permissions cached for one
/// class are never used by another.
/// </summary>
public enum TlbAccessClass
{
    /// <summary>Supervisor accesses with SMAP enforced (CPL 0–2 without RFLAGS.AC, or any implicit supervisor access).</summary>
    Supervisor = 0,

    /// <summary>Explicit supervisor accesses with RFLAGS.AC set while CR4.SMAP is on: user pages are reachable.</summary>
    SupervisorAc = 1,

    /// <summary>CPL 3 accesses.</summary>
    User = 2,
}
