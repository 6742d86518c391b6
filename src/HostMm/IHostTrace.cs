namespace Hypervisor.HostMm;

/// <summary>
/// Receives the host steps that the notifier ordering table is about: PTE changes, CPU TLB flushes and
/// frame frees. Called synchronously on the thread doing the step, possibly under a page-table lock: an
/// implementation must not block or call back into the host.
/// </summary>
public interface IHostTrace
{
    /// <summary>The PTE for <paramref name="address"/> in <paramref name="mm"/> changed from <paramref name="before"/> to <paramref name="after"/>.</summary>
    void PteChanged(Mm mm, Hva address, HostPte before, HostPte after);

    /// <summary>The host flushed its CPU TLB (and, inside that step, the secondary TLBs) for <c>[start, end)</c> of <paramref name="mm"/>.</summary>
    void TlbFlushed(Mm mm, Hva start, Hva end);

    /// <summary>A frame's last reference was dropped and it went back to the free list.</summary>
    void FrameFreed(Pfn pfn);
}
