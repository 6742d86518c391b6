namespace Hypervisor.Vmm.Demo.Dma;

/// <summary>The outcome of <see cref="DmaDemo"/>: the safe phase and the unsafe phase.</summary>
public sealed record DmaDemoResult
{
    /// <summary>The options the demo ran with.</summary>
    public required DmaDemoOptions Options { get; init; }

    /// <summary>The phase with the registration cache on the user channel.</summary>
    public required DmaDemoPhase Safe { get; init; }

    /// <summary>The phase with the cache that never listens.</summary>
    public required DmaDemoPhase Unsafe { get; init; }

    /// <summary>
    /// True when the safe phase copied, was invalidated, performed no stale DMA, verified every copy in the guest and
    /// audited clean, and the unsafe phase's stale DMAs were caught by the engine's debug check.
    /// </summary>
    public bool Succeeded => Failure is null;

    /// <summary>What went wrong, in words; null when the demo succeeded.</summary>
    public string? Failure =>
        Safe.Dma.Copies == 0 ? "the safe phase made no copy"
        : Safe.Dma.StaleDmas > 0 ? $"the safe cache performed {Safe.Dma.StaleDmas} stale DMAs"
        : !Safe.GuestVerified ? $"the guest did not verify its copies under the safe cache: {Safe.Verdict}"
        : Safe.Dma.Invalidations == 0 ? "the host's pressure never invalidated a cached translation in the safe phase"
        : Safe.AuditViolations.Count > 0 ? $"the audits after the safe phase found {Safe.AuditViolations.Count} violations: {Safe.AuditViolations[0]}"
        : Unsafe.Dma.StaleDmas == 0 ? "the unsafe cache performed no stale DMA: the host's pressure never struck a cached buffer"
        : null;
}
