using Hypervisor.HostMm.Reclaim;
using Hypervisor.Vmm.Machine;

namespace Hypervisor.Vmm.Demo.Swap;

/// <summary>The outcome of <c>hv demo swap --guest linux</c>: a Linux guest's memtest in guest RAM larger than the host limit.</summary>
public sealed record LinuxSwapResult
{
    /// <summary>Guest RAM in bytes.</summary>
    public required ulong GuestBytes { get; init; }

    /// <summary>The VM process's host memory limit in bytes.</summary>
    public required ulong HostLimitBytes { get; init; }

    /// <summary>MiB the guest's memtest filled and verified (anonymous memory of a Linux process).</summary>
    public required int MemtestMib { get; init; }

    /// <summary>How the run ended.</summary>
    public required VmStopKind Stop { get; init; }

    /// <summary>The guest's exit code (memtest's status through /init), when it exited.</summary>
    public required int? GuestExitCode { get; init; }

    /// <summary>memtest's verdict line, or the stop's detail.</summary>
    public required string GuestVerdict { get; init; }

    /// <summary>The lines the guest's userland printed (/init's and memtest's), in order.</summary>
    public required IReadOnlyList<string> UserlandLines { get; init; }

    /// <summary>The kernel's banner line, or null when it never printed one.</summary>
    public required string? Banner { get; init; }

    /// <summary>Audits by the host MM auditor and the MMU auditor after reclaim batches.</summary>
    public required long Audits { get; init; }

    /// <summary>What the audits found (at most a few kept).</summary>
    public required IReadOnlyList<string> AuditViolations { get; init; }

    /// <summary>Guest pages resident in host memory when the guest exited.</summary>
    public required long ResidentAtExit { get; init; }

    /// <summary>Guest pages in swap when the guest exited.</summary>
    public required long SwappedAtExit { get; init; }

    /// <summary>The host's reclaim and swap counters.</summary>
    public required ReclaimStats Reclaim { get; init; }

    /// <summary>The swap device, in words.</summary>
    public required string SwapDevice { get; init; }

    /// <summary>Guest instructions retired.</summary>
    public required long Instructions { get; init; }

    /// <summary>The guest's run.</summary>
    public required TimeSpan Elapsed { get; init; }

    /// <summary>True when memtest passed inside Linux, every audit was clean and guest pages really went to swap.</summary>
    public bool Succeeded =>
        Stop == VmStopKind.GuestExit && GuestExitCode == 0 && GuestVerdict.StartsWith("memtest: OK", StringComparison.Ordinal)
        && AuditViolations.Count == 0 && Reclaim.Pswpout > 0;
}
