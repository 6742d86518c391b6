using Hypervisor.HostMm.Migration;
using Hypervisor.Vmm.Machine;

namespace Hypervisor.Vmm.Demo.Migrate;

/// <summary>The outcome of <c>hv demo migrate --guest linux</c>: all guest RAM migrated between nodes under a running Linux.</summary>
public sealed record LinuxMigrateResult
{
    /// <summary>Guest RAM in bytes.</summary>
    public required ulong GuestBytes { get; init; }

    /// <summary>MiB the guest's memtest filled and verified.</summary>
    public required int MemtestMib { get; init; }

    /// <summary>The trips, in order (each one all of guest RAM to the other node).</summary>
    public required IReadOnlyList<MigrateTrip> Trips { get; init; }

    /// <summary>The host's migration counters at the end.</summary>
    public required MigrationStats Migration { get; init; }

    /// <summary>How the run ended.</summary>
    public required VmStopKind Stop { get; init; }

    /// <summary>The guest's exit code, when it exited.</summary>
    public required int? GuestExitCode { get; init; }

    /// <summary>memtest's verdict line, or the stop's detail.</summary>
    public required string GuestVerdict { get; init; }

    /// <summary>The lines the guest's userland printed (/init's and memtest's), in order.</summary>
    public required IReadOnlyList<string> UserlandLines { get; init; }

    /// <summary>The kernel's banner line, or null.</summary>
    public required string? Banner { get; init; }

    /// <summary>Audits by the host MM auditor and the MMU auditor (one after each trip).</summary>
    public required long Audits { get; init; }

    /// <summary>What the audits found (at most a few kept).</summary>
    public required IReadOnlyList<string> AuditViolations { get; init; }

    /// <summary>The whole demo.</summary>
    public required TimeSpan Elapsed { get; init; }

    /// <summary>Trips that began and ended while Linux ran (after its banner, before memtest's verdict): through the boot, /init and memtest.</summary>
    public int TripsWhileLinuxRan { get; init; }

    /// <summary>True when memtest passed inside Linux, every audit was clean and at least two trips moved pages while Linux ran.</summary>
    public bool Succeeded =>
        Stop == VmStopKind.GuestExit && GuestExitCode == 0 && GuestVerdict.StartsWith("memtest: OK", StringComparison.Ordinal)
        && AuditViolations.Count == 0 && TripsWhileLinuxRan >= 2 && Trips.All(t => t.Summary.Migrated > 0);
}
