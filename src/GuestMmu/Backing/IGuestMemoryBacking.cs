namespace Hypervisor.GuestMmu.Backing;

/// <summary>
/// What a memslot's backing must do for the secondary MMU: the host side of guest-physical memory, as KVM reaches
/// it through <c>hva_to_pfn</c>, <c>kvm_release_pfn</c> and <c>kvm_set_pfn_dirty</c>, and as vm-memory's
/// <c>GuestMemoryRegion</c> or Ryujinx's <c>IVirtualMemoryManager</c> expose a region to an emulator. GuestMmu
/// reaches host memory only through this interface; one adapter (<see cref="HostProcessBacking"/>) implements it over
/// HostMm's process, and a test double can drive the fault path without a host.
/// </summary>
/// <remarks>
/// <para>Coherence: nothing here pins. A frame returned by <see cref="Resolve"/> may be unmapped, swapped, merged or
/// migrated the moment its short-term reference is released; the secondary MMU stays coherent only because
/// <see cref="Mm"/>'s notifier chain reports every such change before it happens, and the fault path's retry
/// protocol discards a frame resolved before an invalidation began.</para>
/// <para>Threading and locks: <see cref="Resolve"/> may sleep and take host locks (the mmap lock), so it is called
/// holding no GuestMmu lock. <see cref="Release"/>, <see cref="MarkDirty"/>, <see cref="FrameAddress"/> and
/// <see cref="QueryFrame"/> never block on the host and may be called under the MMU lock (they are how a zap under
/// the MMU lock hands dirty bits back). <see cref="ReadPte"/> is for audits: it may take a page-table lock.</para>
/// </remarks>
public interface IGuestMemoryBacking
{
    /// <summary>
    /// The host process whose address space holds this backing: its notifier chain reports every change, and a
    /// notifier range names it (memslots of a range are found by this identity).
    /// </summary>
    IMm Mm { get; }

    /// <summary>Number of frames the backing's host RAM holds; every valid <see cref="Pfn"/> is below it.</summary>
    ulong TotalFrames { get; }

    /// <summary>
    /// Resolves the frame that backs <paramref name="address"/> without pinning it (get-user-pages): faults it in,
    /// breaking copy-on-write for a <paramref name="write"/>, and takes one short-term reference that the caller
    /// drops with <see cref="Release"/> as soon as the spte is installed or abandoned.
    /// </summary>
    /// <param name="address">A page-aligned host address inside a memslot.</param>
    /// <param name="write">True to resolve for writing (the returned page is then writable, or the call fails).</param>
    /// <returns>The frame and whether the host PTE lets it be written, or a failure with its cause.</returns>
    BackingPage Resolve(Hva address, bool write);

    /// <summary>Drops the short-term reference a successful <see cref="Resolve"/> took on <paramref name="pfn"/>.</summary>
    void Release(Pfn pfn);

    /// <summary>
    /// Marks <paramref name="count"/> frames from <paramref name="pfn"/> dirty in the host (KVM's
    /// <c>kvm_set_pfn_dirty</c>), so reclaim writes them back before it drops or frees them. Never blocks.
    /// </summary>
    void MarkDirty(Pfn pfn, ulong count);

    /// <summary>
    /// The host address of frame <paramref name="pfn"/>'s first byte, through which the walker reads guest page tables
    /// and the interpreter reads and writes guest memory. Valid only while a present spte maps the frame and the
    /// vCPU has not acknowledged a TLB flush since it read that spte.
    /// </summary>
    nint FrameAddress(Pfn pfn);

    /// <summary>Whether <paramref name="pfn"/> is in use, free or outside host RAM (audits).</summary>
    BackingFrameState QueryFrame(Pfn pfn);

    /// <summary>The host PTE that maps <paramref name="address"/> now; <see cref="HostPte.None"/> once the process exited (audits).</summary>
    HostPte ReadPte(Hva address);
}
