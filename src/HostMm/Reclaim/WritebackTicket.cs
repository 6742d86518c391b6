namespace Hypervisor.HostMm.Reclaim;

/// <summary>
/// One reclaim call's share of <see cref="SwapWriteback"/>: its runs still in flight, the pages their completions
/// freed, and the first failure a completion met (rethrown by <see cref="SwapWriteback.Drain"/>). Guarded by the
/// writeback's gate.
/// </summary>
internal sealed class WritebackTicket
{
    /// <summary>Runs submitted and not yet completed.</summary>
    public int Pending { get; set; }

    /// <summary>Pages the completions freed.</summary>
    public long Reclaimed { get; set; }

    /// <summary>An exception a completion threw (a broken invariant), or null.</summary>
    public Exception? Failure { get; set; }
}
