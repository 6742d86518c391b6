namespace Hypervisor.GuestMmu.Walker;

/// <summary>A snapshot of one soft TLB's counters.</summary>
public readonly record struct TlbStats
{
    /// <summary>Lookups that hit.</summary>
    public long Hits { get; init; }

    /// <summary>Lookups that missed.</summary>
    public long Misses { get; init; }

    /// <summary>Entries filled from translations.</summary>
    public long Fills { get; init; }

    /// <summary>Full flushes (shootdowns, control-register changes).</summary>
    public long FullFlushes { get; init; }

    /// <summary>Non-global flushes (CR3 writes).</summary>
    public long NonGlobalFlushes { get; init; }

    /// <summary>Single-page flushes (INVLPG).</summary>
    public long PageFlushes { get; init; }

    /// <summary>INVLPGs that hit the large-page range and flushed everything.</summary>
    public long LargePageFlushes { get; init; }

    /// <summary>Generation wrap-arounds that rewrote the table.</summary>
    public long GenerationWraps { get; init; }

    /// <summary>Field-by-field sum (the counters of several vCPUs together).</summary>
    public static TlbStats operator +(TlbStats a, TlbStats b) => new()
    {
        Hits = a.Hits + b.Hits,
        Misses = a.Misses + b.Misses,
        Fills = a.Fills + b.Fills,
        FullFlushes = a.FullFlushes + b.FullFlushes,
        NonGlobalFlushes = a.NonGlobalFlushes + b.NonGlobalFlushes,
        PageFlushes = a.PageFlushes + b.PageFlushes,
        LargePageFlushes = a.LargePageFlushes + b.LargePageFlushes,
        GenerationWraps = a.GenerationWraps + b.GenerationWraps,
    };
}
