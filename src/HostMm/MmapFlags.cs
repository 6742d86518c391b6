namespace Hypervisor.HostMm;

/// <summary>Options of <see cref="Mm.Mmap"/> (all mappings are anonymous and private).</summary>
[Flags]
public enum MmapFlags
{
    /// <summary>No option: the host chooses the address.</summary>
    None = 0,

    /// <summary>MAP_FIXED: map exactly at the given address, replacing whatever was mapped there.</summary>
    Fixed = 1,

    /// <summary>MAP_POPULATE: fault every page in before returning.</summary>
    Populate = 2,
}
