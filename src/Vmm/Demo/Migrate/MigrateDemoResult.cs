using Hypervisor.HostMm.Migration;

namespace Hypervisor.Vmm.Demo.Migrate;

/// <summary>What <see cref="MigrateDemo"/> saw: every trip, the balancing phase, the guest's verdict, the host's read-back and the audits.</summary>
public sealed record MigrateDemoResult
{
    /// <summary>The options the demo ran with.</summary>
    public required MigrateDemoOptions Options { get; init; }

    /// <summary>The trips between node 0 and node 1, in order.</summary>
    public required IReadOnlyList<MigrateTrip> Trips { get; init; }

    /// <summary>Phase 2, or null when the guest never reached it.</summary>
    public required MigrateDemoBalancing? Balancing { get; init; }

    /// <summary>The host's migration counters at the end (both phases).</summary>
    public required MigrationStats Migration { get; init; }

    /// <summary>The guest's exit code, or null when it did not exit.</summary>
    public required int? GuestExitCode { get; init; }

    /// <summary>The guest's verdict line (<c>ksm: OK</c>) or how the VM stopped.</summary>
    public required string Verdict { get; init; }

    /// <summary>The guest's page count as it printed it (0 when it never did).</summary>
    public required long GuestPages { get; init; }

    /// <summary>Pages the host read back after the guest exited whose content was not the one the guest last wrote (or that could not be read).</summary>
    public required long HostCorruptedPages { get; init; }

    /// <summary>Pages the host read back.</summary>
    public required long HostCheckedPages { get; init; }

    /// <summary>Audits run (host MM auditor and the VM's MMU auditor, at a quiescent point after each trip and balancing step).</summary>
    public required long Audits { get; init; }

    /// <summary>The first violations the audits found.</summary>
    public required IReadOnlyList<string> AuditViolations { get; init; }

    /// <summary>What went wrong outside the checks (the guest never reached a phase), or null.</summary>
    public string? Problem { get; init; }

    /// <summary>The whole demo's wall-clock time.</summary>
    public required TimeSpan Elapsed { get; init; }

    /// <summary>Whether the guest verified every page after every phase and exited 0.</summary>
    public bool GuestPassed => GuestExitCode == 0 && Verdict.StartsWith("ksm: OK", StringComparison.Ordinal);

    /// <summary>Everything held: every trip made and moved pages, balancing moved most pages to node 1, the guest and the host's read-back found every page intact, every audit clean.</summary>
    public bool Succeeded =>
        Problem is null && Trips.Count >= Options.Trips && Trips.All(t => t.Summary.Migrated > 0) && Migration.PgmigrateSuccess > 0
        && Balancing is { Balanced: true, Stats.NumaPagesMigrated: > 0 } && GuestPassed && HostCheckedPages == GuestPages && GuestPages > 0
        && HostCorruptedPages == 0 && AuditViolations.Count == 0 && Options.AuditEveryStep && Audits > 0;
}
