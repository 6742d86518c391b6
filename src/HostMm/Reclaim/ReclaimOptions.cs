namespace Hypervisor.HostMm.Reclaim;

/// <summary>How a host reclaims memory.</summary>
public sealed record ReclaimOptions
{
    /// <summary>Direct-reclaim rounds an allocation tries before it fails as out of memory (each frees up to <see cref="BatchPages"/>).</summary>
    public const int DefaultDirectReclaimRetries = 16;

    /// <summary>The aging and eviction policy.</summary>
    public LruPolicy Policy { get; init; } = LruPolicy.Classic;

    /// <summary>
    /// True (the default, and Linux since 2008) when the accessed bits secondary MMUs report through the notifier
    /// chain's young ops count as references; false ignores their answers, so pages a guest uses only through its
    /// EPT look unused to the host (what the 2008 notifier design fixed).
    /// </summary>
    public bool SecondaryAging { get; init; } = true;

    /// <summary>Pages reclaim isolates and processes at a time (Linux's <c>SWAP_CLUSTER_MAX</c>, 32).</summary>
    public int BatchPages { get; init; } = 32;

    /// <summary>
    /// True when <c>madvise(MADV_PAGEOUT)</c> of more than one batch (<see cref="BatchPages"/>) hands its write runs to
    /// an I/O thread (which checksums, writes and frees them) while it isolates and unmaps the next batches (Linux's
    /// <c>pageout</c> submits and goes on), waiting for every write before it returns. False (the default) writes each
    /// run on the calling thread before the next batch: on the 2-core development machine shared with other builds
    /// the second core was rarely free and the hand-off made swap-out slower, not faster.
    /// </summary>
    public bool AsyncWriteback { get; init; }

    /// <summary>Direct-reclaim rounds before an allocation is refused.</summary>
    public int DirectReclaimRetries { get; init; } = DefaultDirectReclaimRetries;

    /// <summary>
    /// The minimum watermark in pages per node (below it an allocation reclaims first); 0 picks Linux-like defaults
    /// from the node size (about 1/256 of the node, at least 32 pages). Low is 5/4 of it (the background reclaimer wakes)
    /// and high 3/2 (it sleeps again).
    /// </summary>
    public long MinFreePages { get; init; }

    /// <summary>Checks the values.</summary>
    /// <exception cref="ArgumentOutOfRangeException">A value is out of range.</exception>
    public void Validate()
    {
        if (!Enum.IsDefined(Policy))
        {
            throw new ArgumentOutOfRangeException(nameof(Policy), Policy, "the LRU policy must be Classic or MultiGen");
        }

        if (BatchPages is < 1 or > 4096)
        {
            throw new ArgumentOutOfRangeException(nameof(BatchPages), BatchPages, "reclaim batch must be 1 to 4096 pages");
        }

        if (DirectReclaimRetries is < 1 or > 1000)
        {
            throw new ArgumentOutOfRangeException(nameof(DirectReclaimRetries), DirectReclaimRetries, "direct reclaim retries must be 1 to 1000");
        }

        if (MinFreePages < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(MinFreePages), MinFreePages, "the minimum watermark cannot be negative");
        }
    }
}
