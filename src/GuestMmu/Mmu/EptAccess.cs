namespace Hypervisor.GuestMmu.Mmu;

/// <summary>The guest access that caused an EPT violation.</summary>
public enum EptAccess
{
    /// <summary>A data read (or a guest page-table read during a walk).</summary>
    Read,

    /// <summary>A data write (or an accessed/dirty update of a guest page-table entry).</summary>
    Write,

    /// <summary>An instruction fetch.</summary>
    Execute,
}
