namespace Hypervisor.HostMm;

/// <summary>The host's transparent huge page mode (Linux's <c>/sys/kernel/mm/transparent_hugepage/enabled</c>).</summary>
public enum ThpMode
{
    /// <summary>No huge pages (the default).</summary>
    Never,

    /// <summary>Huge pages only in VMAs advised <see cref="Advice.HugePage"/>.</summary>
    Madvise,

    /// <summary>Huge pages wherever a VMA covers an aligned 2 MiB, unless advised <see cref="Advice.NoHugePage"/>.</summary>
    Always,
}
