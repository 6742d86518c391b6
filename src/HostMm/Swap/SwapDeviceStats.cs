namespace Hypervisor.HostMm.Swap;

/// <summary>
/// A snapshot of an <see cref="ISwapDevice"/>'s counters, taken without stopping transfers: under concurrent use
/// each field is exact but the fields are not mutually consistent.
/// </summary>
public readonly record struct SwapDeviceStats
{
    /// <summary>Pages read successfully.</summary>
    public long PagesRead { get; init; }

    /// <summary>Pages written successfully.</summary>
    public long PagesWritten { get; init; }

    /// <summary>Read calls made to the medium (an OS call on a file; a run counts once).</summary>
    public long ReadCalls { get; init; }

    /// <summary>Write calls made to the medium (an OS call on a file; a run counts once).</summary>
    public long WriteCalls { get; init; }

    /// <summary>Slots discarded.</summary>
    public long PagesDiscarded { get; init; }

    /// <summary>Reads that failed (each failing call counts once).</summary>
    public long ReadErrors { get; init; }

    /// <summary>Writes that failed (each failing call counts once).</summary>
    public long WriteErrors { get; init; }
}
