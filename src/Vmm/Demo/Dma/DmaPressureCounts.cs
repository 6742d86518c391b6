namespace Hypervisor.Vmm.Demo.Dma;

/// <summary>What the host's pressure thread did to the guest's buffers during one phase of <see cref="DmaDemo"/>.</summary>
public sealed record DmaPressureCounts
{
    /// <summary><c>madvise(MADV_PAGEOUT)</c> calls on a buffer.</summary>
    public long PageOuts { get; init; }

    /// <summary>Pages written to swap during the phase (pswpout).</summary>
    public long PagesSwappedOut { get; init; }

    /// <summary>KSM scanner steps over the buffers (all mergeable memory of the guest).</summary>
    public long KsmSteps { get; init; }

    /// <summary>Pages merged into KSM pages during the phase (the scanner's merges).</summary>
    public long PagesMerged { get; init; }

    /// <summary><c>move_pages</c> calls moving a buffer to the other NUMA node.</summary>
    public long Migrations { get; init; }

    /// <summary>Pages migrated during the phase (pgmigrate_success).</summary>
    public long PagesMigrated { get; init; }

    /// <summary>Buffers unmapped and mapped again (MAP_FIXED) with their contents restored, with the vCPU held.</summary>
    public long Remaps { get; init; }

    /// <summary>
    /// Pages a remap could not read back because their swap slot failed its checksum, restored as zeros: only the unsafe
    /// cache causes them (a stale write into a frame while pageout wrote it to swap); in the safe phase such a failure stops the demo.
    /// </summary>
    public long UnreadablePages { get; init; }
}
