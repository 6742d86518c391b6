using Hypervisor.HostMm;

namespace Hypervisor.Vmm.Demo.Thp;

/// <summary>One whole run of the guest in <see cref="ThpDemo"/>'s comparison: what the MMU, the interpreter and the host counted.</summary>
public sealed record ThpDemoRun
{
    /// <summary>The host's THP mode for the run.</summary>
    public required ThpMode Mode { get; init; }

    /// <summary>EPT violations (faults into the secondary MMU).</summary>
    public required long EptViolations { get; init; }

    /// <summary>EPT table pages at the end.</summary>
    public required long EptTablePages { get; init; }

    /// <summary>2 MiB EPT leaves present at the end (KVM's <c>pages_2m</c>).</summary>
    public required long Pages2M { get; init; }

    /// <summary>4 KiB EPT leaves present at the end (KVM's <c>pages_4k</c>).</summary>
    public required long Pages4K { get; init; }

    /// <summary>The interpreter's TLB misses.</summary>
    public required long TlbMisses { get; init; }

    /// <summary>2-D page walks (guest tables through the EPT).</summary>
    public required long Walks { get; init; }

    /// <summary>Instructions retired.</summary>
    public required long Instructions { get; init; }

    /// <summary>Host faults that mapped a 2 MiB page.</summary>
    public required long ThpFaultAlloc { get; init; }

    /// <summary>Time running guest code.</summary>
    public required TimeSpan GuestTime { get; init; }

    /// <summary>The guest's exit code, or null when it did not exit.</summary>
    public required int? GuestExitCode { get; init; }

    /// <summary>The guest's verdict line (<c>ksm: OK</c>) or how the VM stopped.</summary>
    public required string Verdict { get; init; }

    /// <summary>Whether the guest verified every page and exited 0.</summary>
    public bool GuestPassed => GuestExitCode == 0 && Verdict.StartsWith("ksm: OK", StringComparison.Ordinal);
}
