using Hypervisor.GuestMmu.Ept;

namespace Hypervisor.GuestMmu.Mmu;

/// <summary>How a <see cref="TdpMmu"/> behaves.</summary>
public sealed record TdpMmuOptions
{
    /// <summary>
    /// EPT accessed/dirty bits on (default): aging tests and clears the accessed bit without unmapping.
    /// Off: aging makes young sptes access-tracked (no access allowed until the next fault restores them),
    /// as KVM does without A/D bits.
    /// </summary>
    public bool AccessedDirtyEnabled { get; init; } = true;

    /// <summary>
    /// Map 2 MiB with one leaf where the host backs the guest frame with a huge page and the memslot's alignment allows
    /// (KVM's <c>kvm_mmu_max_mapping_level</c>); on by default, as in KVM. Off maps everything with 4 KiB leaves.
    /// </summary>
    public bool LargePages { get; init; } = true;

    /// <summary>The EPT's bulk-kernel path (zap, age, count); default the widest this CPU accelerates (<see cref="EptVectorPath.Detected"/>).</summary>
    public EptVectorWidth VectorWidth { get; init; } = EptVectorPath.Detected;

    /// <summary>When the host learns that a frame may have been written (<see cref="DirtyTrackingPolicy"/>); default <see cref="DirtyTrackingPolicy.OnZap"/>.</summary>
    public DirtyTrackingPolicy DirtyTracking { get; init; } = DirtyTrackingPolicy.OnZap;
}
