namespace Hypervisor.GuestMmu.Backing;

/// <summary>
/// The outcome of <see cref="IGuestMemoryBacking.Resolve"/>: a frame with one short-term reference and whether the
/// host PTE allows writing it, or a failure with its cause.
/// </summary>
/// <param name="Status">Whether a frame was resolved and, if not, why.</param>
/// <param name="Pfn">The frame (meaningful only when <see cref="Succeeded"/>).</param>
/// <param name="Writable">True when the host PTE is writable, so the spte may be.</param>
public readonly record struct BackingPage(BackingStatus Status, Pfn Pfn, bool Writable)
{
    /// <summary>True when a frame was resolved and carries a reference the caller must release.</summary>
    public bool Succeeded => Status == BackingStatus.Resolved;

    /// <summary>A resolved frame.</summary>
    public static BackingPage Resolved(Pfn pfn, bool writable) => new(BackingStatus.Resolved, pfn, writable);

    /// <summary>For a failure, what the backing said about it (the swap slot and the device's answer for a memory failure); else null.</summary>
    public string? Detail { get; init; }

    /// <summary>
    /// True when the host maps the page with a 2 MiB leaf (KVM's <c>host_pfn_mapping_level</c> = 2): the 512 frames of
    /// the aligned 2 MiB around <see cref="Pfn"/> are one host huge page, which the EPT may map with one 2 MiB leaf.
    /// </summary>
    public bool HostHuge { get; init; }

    /// <summary>A failure: no frame, no reference.</summary>
    public static BackingPage Failed(BackingStatus status, string? detail = null) => new(status, default, false) { Detail = detail };
}
