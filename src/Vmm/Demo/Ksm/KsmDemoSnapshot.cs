using Hypervisor.HostMm.Ksm;

namespace Hypervisor.Vmm.Demo.Ksm;

/// <summary>The host's memory and KSM counters at one point of the demo.</summary>
public sealed record KsmDemoSnapshot
{
    /// <summary>Frames of the host's one pool in use (every VM's resident pages, page tables, the zero page).</summary>
    public required long FramesInUse { get; init; }

    /// <summary>The VMs' resident pages, summed (each process's RSS; a merged page counts once per mapping).</summary>
    public required long ResidentPages { get; init; }

    /// <summary>The scanner's counters.</summary>
    public required KsmStats Ksm { get; init; }

    /// <summary>Each VM's <c>ksm_merging_pages</c>, in VM order.</summary>
    public required IReadOnlyList<long> MergingPages { get; init; }

    /// <summary>Write faults that copied a KSM page (<c>cow_ksm</c>), host-wide.</summary>
    public required long CowKsm { get; init; }
}
