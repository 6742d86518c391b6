using Hypervisor.HostMm.Reclaim;
using Hypervisor.Vmm.Machine;

namespace Hypervisor.Vmm.Demo.Swap;

/// <summary>Phase 1 of the swap demo: memtest over guest RAM several times the host limit, audited after every reclaim batch.</summary>
public sealed record MemtestPhaseResult
{
    /// <summary>Guest RAM in bytes.</summary>
    public required ulong GuestBytes { get; init; }

    /// <summary>The host memory limit of the VM's process in bytes.</summary>
    public required ulong HostLimitBytes { get; init; }

    /// <summary>Pages memtest wrote and verified (its region).</summary>
    public required long RegionPages { get; init; }

    /// <summary>How the VM stopped.</summary>
    public required VmStopKind Stop { get; init; }

    /// <summary>The guest's exit code, when it exited.</summary>
    public required int? GuestExitCode { get; init; }

    /// <summary>memtest's verdict line ("memtest: OK, ..." or "memtest: FAIL, ..."), or the VM's stop detail.</summary>
    public required string GuestVerdict { get; init; }

    /// <summary>Pages memtest found wrong, word by word, in the guest.</summary>
    public required long GuestCorruptedPages { get; init; }

    /// <summary>Pages whose contents differ from the pattern when the host reads the region back after the guest exits (through swap-in).</summary>
    public required long HostCorruptedPages { get; init; }

    /// <summary>Pages of the region the host can no longer produce: neither mapped nor in swap, or failing to read back.</summary>
    public required long LostPages { get; init; }

    /// <summary>Audits run (host MM auditor and MMU auditor, each time a reclaim batch ran since the last one).</summary>
    public required long Audits { get; init; }

    /// <summary>Audits after a background-reclaimer (kswapd) step, each step audited.</summary>
    public required long KswapdAudits { get; init; }

    /// <summary>Audits after a slice of guest code whose faults reclaimed (direct reclaim).</summary>
    public required long DirectAudits { get; init; }

    /// <summary>Audits after a page of the host's read-back whose access reclaimed (direct reclaim on the demo's thread).</summary>
    public required long ReadBackAudits { get; init; }

    /// <summary>The violations the audits found (the first few; empty when the host and the MMU stayed consistent).</summary>
    public required IReadOnlyList<string> AuditViolations { get; init; }

    /// <summary>Resident pages of the region when the guest exited.</summary>
    public required long ResidentAtExit { get; init; }

    /// <summary>Pages of the region in swap when the guest exited.</summary>
    public required long SwappedAtExit { get; init; }

    /// <summary>The host's reclaim and swap counters for the phase (guest run and host read-back).</summary>
    public required ReclaimStats Reclaim { get; init; }

    /// <summary>The host's reclaim and swap counters when the guest exited (before the host's read-back).</summary>
    public required ReclaimStats ReclaimAtGuestExit { get; init; }

    /// <summary>The swap device, in words.</summary>
    public required string SwapDevice { get; init; }

    /// <summary>Wall-clock time of the guest run.</summary>
    public required TimeSpan Elapsed { get; init; }

    /// <summary>True when the guest passed, nothing was corrupted or lost, pages went out to swap and back, and every audit was clean.</summary>
    public bool Succeeded =>
        Stop == VmStopKind.GuestExit && GuestExitCode == 0 && GuestCorruptedPages == 0 && HostCorruptedPages == 0 && LostPages == 0
        && AuditViolations.Count == 0 && Audits > 0 && Reclaim.Pswpout > 0 && Reclaim.Pswpin > 0;
}
