namespace Hypervisor.GuestMmu.Mmu;

/// <summary>
/// When a <see cref="TdpMmu"/> tells the host that the guest may have written a frame (KVM's
/// <c>kvm_set_pfn_dirty</c> / <c>folio_mark_dirty</c>), so that reclaim writes the frame back before it drops it.
/// </summary>
/// <remarks>
/// Either way no guest write is lost to the host: under <see cref="OnZap"/> the EPT dirty bit of every spte reaches
/// the frame before the spte is gone; under <see cref="OnMap"/> every frame an spte can write is already dirty.
/// The EPT dirty bits themselves (the walker sets them; dirty logging write-protects and refaults) work the same
/// under both.
/// </remarks>
public enum DirtyTrackingPolicy
{
    /// <summary>
    /// A zap, a change_pte and a clearing aging pass without A/D bits hand every dirty spte's frame to the backing
    /// (KVM before Linux 6.13). Frames the guest never wrote stay clean, so reclaim can drop them without a write;
    /// an all-dirty zap makes one backing call per spte. The default.
    /// </summary>
    OnZap,

    /// <summary>
    /// The fault path marks the frame dirty when it installs a writable spte, and zap, change_pte and aging never
    /// report dirtiness (KVM since Linux 6.13): an all-dirty zap costs what a clean one does, but a frame mapped
    /// writable and only read is written back by reclaim anyway.
    /// </summary>
    OnMap,
}
