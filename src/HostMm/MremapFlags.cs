namespace Hypervisor.HostMm;

/// <summary>Options of <see cref="Mm.Mremap"/>.</summary>
[Flags]
public enum MremapFlags
{
    /// <summary>Resize in place only.</summary>
    None = 0,

    /// <summary>MREMAP_MAYMOVE: move the mapping when it cannot grow in place.</summary>
    MayMove = 1,

    /// <summary>MREMAP_FIXED: move to exactly the given address (requires <see cref="MayMove"/>).</summary>
    Fixed = 2,
}
