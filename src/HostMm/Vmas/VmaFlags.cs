namespace Hypervisor.HostMm.Vmas;

/// <summary>
/// Per-VMA advice bits that madvise sets (Linux's <c>VM_MERGEABLE</c>, <c>VM_HUGEPAGE</c>, <c>VM_NOHUGEPAGE</c>).
/// <see cref="HugePage"/> and <see cref="NoHugePage"/> exclude each other.
/// </summary>
[Flags]
public enum VmaFlags
{
    /// <summary>No advice.</summary>
    None = 0,

    /// <summary>KSM may merge the pages of this VMA (<c>MADV_MERGEABLE</c>).</summary>
    Mergeable = 1,

    /// <summary>Back with 2 MiB pages where possible (<c>MADV_HUGEPAGE</c>).</summary>
    HugePage = 2,

    /// <summary>Never back with 2 MiB pages (<c>MADV_NOHUGEPAGE</c>).</summary>
    NoHugePage = 4,
}
