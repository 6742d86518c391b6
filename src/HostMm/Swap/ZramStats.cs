namespace Hypervisor.HostMm.Swap;

/// <summary>
/// A snapshot of a <see cref="ZramSwapDevice"/>'s storage, under the names of zram's <c>mm_stat</c> where one
/// exists. Taken without stopping writers: each field is exact, the fields are not mutually consistent.
/// </summary>
public readonly record struct ZramStats
{
    /// <summary>Slots holding a page (same-filled, compressed or raw).</summary>
    public long PagesStored { get; init; }

    /// <summary>Stored pages whose 8-byte words are all equal, kept as that value with no memory (<c>same_pages</c>).</summary>
    public long SameFilledPages { get; init; }

    /// <summary>Stored pages that did not compress below the threshold and are kept raw (<c>huge_pages</c>).</summary>
    public long IncompressiblePages { get; init; }

    /// <summary>Bytes of stored objects: compressed lengths plus 4096 per raw page (<c>compr_data_size</c>).</summary>
    public long CompressedBytes { get; init; }

    /// <summary>Bytes the stored pages would take uncompressed: 4096 per stored page (<c>orig_data_size</c>).</summary>
    public long OriginalBytes { get; init; }

    /// <summary>Native memory held by the allocator's chunks (<c>mem_used_total</c>); the per-slot table is not included.</summary>
    public long MemoryUsedBytes { get; init; }

    /// <summary>Native memory of the per-slot table (16 bytes per slot).</summary>
    public long TableBytes { get; init; }

    /// <summary>
    /// <see cref="OriginalBytes"/> over the bytes it is kept in, counting a same-filled page as its 8-byte value:
    /// <c>OriginalBytes / (CompressedBytes + 8 × SameFilledPages)</c>; 1 when nothing is stored.
    /// </summary>
    public double CompressionRatio =>
        PagesStored == 0 ? 1.0 : (double)OriginalBytes / (CompressedBytes + (8 * SameFilledPages));
}
