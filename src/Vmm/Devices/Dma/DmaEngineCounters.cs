namespace Hypervisor.Vmm.Devices.Dma;

/// <summary>
/// A snapshot of the DMA engine's counters (its registration cache's): copies, bytes, translation hits and misses,
/// invalidations, events read from the user channel, and the debug check's stale DMAs.
/// </summary>
public readonly record struct DmaEngineCounters
{
    /// <summary>The cache mode the engine runs in.</summary>
    public DmaCacheMode Mode { get; init; }

    /// <summary>Copies completed (status <see cref="DmaStatus.Done"/>).</summary>
    public long Copies { get; init; }

    /// <summary>Bytes copied by the completed copies.</summary>
    public long Bytes { get; init; }

    /// <summary>Page translations served from the cache.</summary>
    public long Hits { get; init; }

    /// <summary>Page translations resolved through get-user-pages (every translation when the cache is off).</summary>
    public long Misses { get; init; }

    /// <summary>Cached translations dropped because a user-channel event covered them (safe mode only).</summary>
    public long Invalidations { get; init; }

    /// <summary>Invalidate events read from the user channel (safe mode only).</summary>
    public long EventsRead { get; init; }

    /// <summary>Times the generation counter moved during a copy's acquire or copy, which was then done again (safe mode only).</summary>
    public long Retries { get; init; }

    /// <summary>
    /// Completed copies that read or wrote at least one frame the host no longer mapped at that address when the copy ran:
    /// the debug check compares each frame used with a fresh read of the host PTE, independently of the guest's own check.
    /// </summary>
    public long StaleDmas { get; init; }

    /// <summary>Pages of <see cref="StaleDmas"/>: each page read or written through a stale translation.</summary>
    public long StalePages { get; init; }

    /// <summary>Of <see cref="StalePages"/>, those whose frame was free when the copy used it (a write there lands in a freed frame).</summary>
    public long StaleFreeFrames { get; init; }

    /// <summary>
    /// Stale writes the engine refused because the frame had become a host page table or a reserved frame: written, they
    /// would corrupt the simulated host's own structures rather than memory (unsafe mode only).
    /// </summary>
    public long BlockedWrites { get; init; }

    /// <summary>
    /// Waits for the invalidations in flight to end before resolving again (the chain's grace period; safe mode only):
    /// after reading events, which report only an invalidation's start, and when a buffer is first registered, since an
    /// invalidation that started before it sent it no event.
    /// </summary>
    public long Barriers { get; init; }

    /// <summary>Copies refused or failed (<see cref="DmaStatus.BadRange"/> or <see cref="DmaStatus.Fault"/>).</summary>
    public long Failures { get; init; }

    /// <summary>Buffer ranges registered on the user channel now.</summary>
    public int Regions { get; init; }

    /// <summary>Page translations cached now.</summary>
    public int CachedTranslations { get; init; }

    /// <summary>Hits over all translations (0 before the first).</summary>
    public double HitRate => Hits + Misses == 0 ? 0 : (double)Hits / (Hits + Misses);
}
