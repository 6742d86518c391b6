using Hypervisor.Vmm.Devices.Dma;

namespace Hypervisor.Vmm.Demo.Dma;

/// <summary>One run of the dmatest guest under host pressure with one DMA cache mode.</summary>
public sealed record DmaDemoPhase
{
    /// <summary>The DMA engine's cache mode.</summary>
    public required DmaCacheMode Mode { get; init; }

    /// <summary>The guest's exit code (null when it did not exit: a crash, a timeout).</summary>
    public required int? GuestExitCode { get; init; }

    /// <summary>The guest's last line (its verdict), or how the VM stopped.</summary>
    public required string Verdict { get; init; }

    /// <summary>The guest's mismatch lines (at most 4).</summary>
    public required IReadOnlyList<string> Mismatches { get; init; }

    /// <summary>The engine's counters at the end of the run.</summary>
    public required DmaEngineCounters Dma { get; init; }

    /// <summary>What the host did to the buffers.</summary>
    public required DmaPressureCounts Pressure { get; init; }

    /// <summary>The host MM auditor's and the MMU auditor's findings after the run.</summary>
    public required IReadOnlyList<string> AuditViolations { get; init; }

    /// <summary>Wall time of the phase.</summary>
    public required TimeSpan Elapsed { get; init; }

    /// <summary>True when the guest verified every copy and exited 0.</summary>
    public bool GuestVerified => GuestExitCode == 0;
}
