namespace Hypervisor.HostMm.Swap;

/// <summary>What a <see cref="FaultInjectingSwapDevice"/> has injected so far, in pages.</summary>
public readonly record struct FaultInjectionStats
{
    /// <summary>Page reads reported as failed.</summary>
    public long ReadErrors { get; init; }

    /// <summary>Page writes failed and not written.</summary>
    public long WriteErrors { get; init; }

    /// <summary>Page reads returned with one bit flipped and no error.</summary>
    public long CorruptedReads { get; init; }

    /// <summary>Page writes stored with one bit flipped and no error.</summary>
    public long CorruptedWrites { get; init; }
}
