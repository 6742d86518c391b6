namespace Hypervisor.HostMm.Frames;

/// <summary>Shape of host RAM for <see cref="HostMemory"/>.</summary>
public sealed record HostMemoryOptions
{
    /// <summary>Smallest host RAM accepted: 64 MiB.</summary>
    public const ulong MinTotalBytes = 64UL << 20;

    /// <summary>Largest host RAM accepted: 64 GiB (the frame table is then 16 Mi entries).</summary>
    public const ulong MaxTotalBytes = 64UL << 30;

    /// <summary>Most NUMA nodes accepted.</summary>
    public const int MaxNodeCount = 64;

    /// <summary>
    /// Host RAM in bytes, from <see cref="MinTotalBytes"/> to <see cref="MaxTotalBytes"/>, a multiple of
    /// <see cref="Paging.LargePageSize"/> × <see cref="NodeCount"/> so that every node is a whole number of
    /// 2 MiB blocks.
    /// </summary>
    public required ulong TotalBytes { get; init; }

    /// <summary>Number of NUMA nodes the frames are split evenly into, 1 to <see cref="MaxNodeCount"/>; default 2.</summary>
    public int NodeCount { get; init; } = 2;

    /// <summary>
    /// Audit mode: freed frames are filled with <see cref="HostMemory.PoisonByte"/> and checked on
    /// reallocation, so a write to a freed frame is caught (SLUB's poisoning, for whole frames).
    /// </summary>
    public bool AuditFreedFrames { get; init; }

    /// <summary>Throws <see cref="InvalidHostMemoryOptionsException"/> naming the first value that breaks a rule.</summary>
    public void Validate()
    {
        if (NodeCount < 1 || NodeCount > MaxNodeCount)
        {
            throw new InvalidHostMemoryOptionsException(
                HostMmRule.NodeCountOutOfRange,
                $"NodeCount {NodeCount} is out of range: host RAM needs 1 to {MaxNodeCount} NUMA nodes",
                nameof(NodeCount));
        }

        if (TotalBytes < MinTotalBytes || TotalBytes > MaxTotalBytes)
        {
            throw new InvalidHostMemoryOptionsException(
                HostMmRule.TotalBytesOutOfRange,
                $"TotalBytes {TotalBytes} ({TotalBytes >> 20} MiB) is out of range: host RAM must be {MinTotalBytes >> 20} MiB to {MaxTotalBytes >> 30} GiB",
                nameof(TotalBytes));
        }

        var unit = Paging.LargePageSize * (ulong)NodeCount;
        if (TotalBytes % unit != 0)
        {
            throw new InvalidHostMemoryOptionsException(
                HostMmRule.TotalBytesNotNodeAligned,
                $"TotalBytes {TotalBytes} is not a multiple of 2 MiB per node: with {NodeCount} nodes it must be a multiple of {unit} bytes",
                nameof(TotalBytes));
        }
    }
}
