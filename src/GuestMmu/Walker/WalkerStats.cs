namespace Hypervisor.GuestMmu.Walker;

/// <summary>A snapshot of one walker's counters.</summary>
public readonly record struct WalkerStats
{
    /// <summary>Translations requested.</summary>
    public long Walks { get; init; }

    /// <summary>EPT violations the walks took (page-table pages and final pages), each resolved through the fault path.</summary>
    public long EptViolations { get; init; }

    /// <summary>Guest page faults reported.</summary>
    public long GuestPageFaults { get; init; }

    /// <summary>Walks that ended at an MMIO gpa.</summary>
    public long EptMmio { get; init; }

    /// <summary>Walks that ended with a VM error.</summary>
    public long Errors { get; init; }

    /// <summary>Walks restarted because a TLB flush was serviced in the middle of them.</summary>
    public long Restarts { get; init; }

    /// <summary>Guest accessed/dirty bits written by compare-exchange.</summary>
    public long GuestAdUpdates { get; init; }

    /// <summary>EPT accessed/dirty bits set.</summary>
    public long EptAdUpdates { get; init; }

    /// <summary>Field-by-field sum (the counters of several vCPUs together).</summary>
    public static WalkerStats operator +(WalkerStats a, WalkerStats b) => new()
    {
        Walks = a.Walks + b.Walks,
        EptViolations = a.EptViolations + b.EptViolations,
        GuestPageFaults = a.GuestPageFaults + b.GuestPageFaults,
        EptMmio = a.EptMmio + b.EptMmio,
        Errors = a.Errors + b.Errors,
        Restarts = a.Restarts + b.Restarts,
        GuestAdUpdates = a.GuestAdUpdates + b.GuestAdUpdates,
        EptAdUpdates = a.EptAdUpdates + b.EptAdUpdates,
    };
}
