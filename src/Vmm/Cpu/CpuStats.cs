namespace Hypervisor.Vmm.Cpu;

/// <summary>A snapshot of one vCPU interpreter's counters.</summary>
public readonly record struct CpuStats
{
    /// <summary>Instructions retired.</summary>
    public long Instructions { get; init; }

    /// <summary>Basic blocks executed.</summary>
    public long Blocks { get; init; }

    /// <summary>Block lookups answered by the decoded-instruction cache.</summary>
    public long DecodeCacheHits { get; init; }

    /// <summary>Block lookups that had to decode.</summary>
    public long DecodeCacheMisses { get; init; }

    /// <summary>Instructions decoded.</summary>
    public long InstructionsDecoded { get; init; }

    /// <summary>Cached code pages dropped because a store hit them (self-modifying or reloaded code).</summary>
    public long CodeInvalidations { get; init; }

    /// <summary>Exceptions delivered to the guest.</summary>
    public long ExceptionsDelivered { get; init; }

    /// <summary>Page faults delivered to the guest.</summary>
    public long PageFaults { get; init; }

    /// <summary>Port I/O instructions executed.</summary>
    public long PortIo { get; init; }

    /// <summary>Accesses emulated as MMIO.</summary>
    public long MmioAccesses { get; init; }

    /// <summary>External interrupts and NMIs delivered through the IDT.</summary>
    public long InterruptsDelivered { get; init; }

    /// <summary>HLTs the vCPU woke from (the clock skipped to the next timer deadline, or an event was already pending).</summary>
    public long HaltWakeups { get; init; }

    /// <summary>TSC ticks skipped while halted.</summary>
    public long HaltedTicks { get; init; }

    /// <summary>The translating tier's counters.</summary>
    public JitStats Jit { get; init; }

    /// <summary>Fraction of block lookups served from the cache (0 when none happened).</summary>
    public double DecodeCacheHitRate =>
        DecodeCacheHits + DecodeCacheMisses == 0 ? 0 : (double)DecodeCacheHits / (DecodeCacheHits + DecodeCacheMisses);

    /// <summary>Field-by-field sum (the counters of several vCPUs together).</summary>
    public static CpuStats operator +(CpuStats a, CpuStats b) => new()
    {
        Instructions = a.Instructions + b.Instructions,
        Blocks = a.Blocks + b.Blocks,
        DecodeCacheHits = a.DecodeCacheHits + b.DecodeCacheHits,
        DecodeCacheMisses = a.DecodeCacheMisses + b.DecodeCacheMisses,
        InstructionsDecoded = a.InstructionsDecoded + b.InstructionsDecoded,
        CodeInvalidations = a.CodeInvalidations + b.CodeInvalidations,
        ExceptionsDelivered = a.ExceptionsDelivered + b.ExceptionsDelivered,
        PageFaults = a.PageFaults + b.PageFaults,
        PortIo = a.PortIo + b.PortIo,
        MmioAccesses = a.MmioAccesses + b.MmioAccesses,
        InterruptsDelivered = a.InterruptsDelivered + b.InterruptsDelivered,
        HaltWakeups = a.HaltWakeups + b.HaltWakeups,
        HaltedTicks = a.HaltedTicks + b.HaltedTicks,
        Jit = a.Jit + b.Jit,
    };
}
