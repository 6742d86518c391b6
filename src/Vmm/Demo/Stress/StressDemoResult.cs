namespace Hypervisor.Vmm.Demo.Stress;

/// <summary>
/// What <see cref="StressDemo"/> saw: each mechanism's operations and effect, the secondary MMU's zaps, refaults,
/// retries and waits, the worst invalidation and shootdown latencies, the guest's verification and the audits. Plain
/// properties (no behaviour but the verdict), so a report writer can serialise it as it is.
/// </summary>
public sealed record StressDemoResult
{
    /// <summary>The options the demo ran with (the seed among them).</summary>
    public required StressDemoOptions Options { get; init; }

    /// <summary>Where the guest's control page and data were (the schedule's operations are drawn over it).</summary>
    public required StressGuestLayout Layout { get; init; }

    /// <summary>Each mechanism, in <see cref="StressMechanismKind"/> order.</summary>
    public required IReadOnlyList<StressMechanismResult> Mechanisms { get; init; }

    /// <summary>How long the mechanisms ran under the guest.</summary>
    public required TimeSpan StressElapsed { get; init; }

    /// <summary>EPT violations (the guest's refaults after every zap, and its first touches).</summary>
    public required long EptViolations { get; init; }

    /// <summary>sptes zapped by notifier invalidations and memslot changes.</summary>
    public required long SptesZapped { get; init; }

    /// <summary>Notifier invalidations the MMU handled.</summary>
    public required long Invalidations { get; init; }

    /// <summary>Faults that started again because an invalidation touched their gfn (the retry protocol).</summary>
    public required long FaultRetries { get; init; }

    /// <summary>Of those, retries that first waited for an invalidation in progress to end.</summary>
    public required long InvalidationWaits { get; init; }

    /// <summary>Invalidations measured from start to end.</summary>
    public required long InvalidationsTimed { get; init; }

    /// <summary>The mean start-to-end window of an invalidation.</summary>
    public required TimeSpan MeanInvalidation { get; init; }

    /// <summary>The longest start-to-end window of an invalidation.</summary>
    public required TimeSpan WorstInvalidation { get; init; }

    /// <summary>TLB shootdowns.</summary>
    public required long Shootdowns { get; init; }

    /// <summary>Shootdowns that waited for a vCPU in guest mode to acknowledge.</summary>
    public required long ShootdownWaits { get; init; }

    /// <summary>The mean wait of those.</summary>
    public required TimeSpan MeanShootdown { get; init; }

    /// <summary>The longest wait of those (request to last acknowledgement).</summary>
    public required TimeSpan WorstShootdown { get; init; }

    /// <summary>Memory-fault exits the VMM resolved (the vCPUs ran on).</summary>
    public required long MemoryFaultExits { get; init; }

    /// <summary>Passes the guest's vCPUs completed (write and verify).</summary>
    public required long GuestPasses { get; init; }

    /// <summary>Pages the guest verified.</summary>
    public required long PagesVerified { get; init; }

    /// <summary>Pages the guest found that read back as neither what it wrote nor an announced discard.</summary>
    public required long CorruptedPages { get; init; }

    /// <summary>Pages that read back as zeros after an announced MADV_DONTNEED (not corruption).</summary>
    public required long DiscardedPages { get; init; }

    /// <summary>The corrupted pages the guest named (the first ones).</summary>
    public required IReadOnlyList<string> CorruptionLines { get; init; }

    /// <summary>The guest's exit code (0: it found no corrupted page), or null when it did not exit.</summary>
    public required int? GuestExitCode { get; init; }

    /// <summary>The guest's verdict line, or how its run ended.</summary>
    public required string Verdict { get; init; }

    /// <summary>Audit passes (host MM auditor and MMU auditor, everything stopped).</summary>
    public required long AuditPasses { get; init; }

    /// <summary>Violations the audits found (all of them).</summary>
    public required long AuditViolationCount { get; init; }

    /// <summary>The first violations found.</summary>
    public required IReadOnlyList<string> AuditViolations { get; init; }

    /// <summary>The longest an audit pass held everything stopped.</summary>
    public required TimeSpan LongestAuditPause { get; init; }

    /// <summary>What went wrong outside the checks (a mechanism's failure, a guest that did not boot or stop), or null.</summary>
    public string? Problem { get; init; }

    /// <summary>The DMA engine's counters at the end, or null when the run left it out (<c>--without Dma</c>).</summary>
    public Devices.Dma.DmaEngineCounters? Dma { get; init; }

    /// <summary>DMA destination pages read back and found as their copy's source was written.</summary>
    public long DmaVerifiedPages { get; init; }

    /// <summary>DMA destination pages with a wrong byte (each a stale DMA or a lost write).</summary>
    public long DmaCorruptedPages { get; init; }

    /// <summary>The first wrong DMA pages, one line each.</summary>
    public IReadOnlyList<string> DmaCorruptionLines { get; init; } = [];

    /// <summary>Copies through a stale translation, by the engine's own check (0 without the engine).</summary>
    public long StaleDmas => Dma?.StaleDmas ?? 0;

    /// <summary>Corrupted pages of every verifier: the guest's and the DMA mechanism's.</summary>
    public long AllCorruptedPages => CorruptedPages + DmaCorruptedPages;

    /// <summary>The whole demo's wall-clock time.</summary>
    public required TimeSpan Elapsed { get; init; }

    /// <summary>
    /// Every check held: no page corrupted (the guest's or a DMA destination's), no stale DMA, every audit clean, at least
    /// one audit ran, the guest passed and nothing failed outside the checks.
    /// </summary>
    public bool ChecksHeld =>
        Problem is null && AuditViolationCount == 0 && AllCorruptedPages == 0 && StaleDmas == 0 && GuestExitCode == 0 && AuditPasses > 0
        && Mechanisms.Count > 0;

    /// <summary>The mechanisms that were not left out and yet never acted on guest memory in the run.</summary>
    public IReadOnlyList<StressMechanismResult> IdleMechanisms => [.. Mechanisms.Where(m => !m.Active && !Options.Without.Contains(m.Kind))];

    /// <summary>Everything held (<see cref="ChecksHeld"/>) and every mechanism not left out ran and reached guest memory.</summary>
    public bool Succeeded => ChecksHeld && IdleMechanisms.Count == 0;
}
