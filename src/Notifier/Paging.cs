namespace Hypervisor.Notifier;

/// <summary>Page geometry shared by every address space in the project (x86-64, 4 KiB base pages).</summary>
public static class Paging
{
    /// <summary>Size of a base page in bytes.</summary>
    public const ulong PageSize = 4096;

    /// <summary>log2 of <see cref="PageSize"/>.</summary>
    public const int PageShift = 12;

    /// <summary>Mask of the offset bits inside a base page.</summary>
    public const ulong PageOffsetMask = PageSize - 1;

    /// <summary>Size of a large (2 MiB, PMD-level) page in bytes.</summary>
    public const ulong LargePageSize = 2UL << 20;

    /// <summary>log2 of <see cref="LargePageSize"/>.</summary>
    public const int LargePageShift = 21;

    /// <summary>True when <paramref name="value"/> is a multiple of <see cref="PageSize"/>.</summary>
    public static bool IsPageAligned(ulong value) => (value & PageOffsetMask) == 0;
}
