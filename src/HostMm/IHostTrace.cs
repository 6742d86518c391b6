using Hypervisor.HostMm.Huge;
using Hypervisor.HostMm.Migration;

namespace Hypervisor.HostMm;

/// <summary>
/// Receives the host steps that the notifier ordering table is about: PTE changes, CPU TLB flushes and
/// frame frees; and, for a timeline, the host's larger operations as spans (swap I/O, KSM merges, page migrations,
/// huge page splits and collapses), each reported once it ended with the <see cref="System.Diagnostics.Stopwatch"/>
/// timestamp of its start. Called synchronously on the thread doing the step, possibly under a page-table lock: an
/// implementation must not block or call back into the host.
/// </summary>
/// <remarks>
/// The span hooks have empty default bodies (a trace that only follows PTEs ignores them). The host reads its
/// <see cref="Host.Trace"/> once per operation and takes a timestamp only when one is attached, so a host without a
/// trace pays one null check per operation.
/// </remarks>
public interface IHostTrace
{
    /// <summary>The PTE for <paramref name="address"/> in <paramref name="mm"/> changed from <paramref name="before"/> to <paramref name="after"/>.</summary>
    void PteChanged(Mm mm, Hva address, HostPte before, HostPte after);

    /// <summary>The host flushed its CPU TLB (and, inside that step, the secondary TLBs) for <c>[start, end)</c> of <paramref name="mm"/>.</summary>
    void TlbFlushed(Mm mm, Hva start, Hva end);

    /// <summary>A frame's last reference was dropped and it went back to the free list.</summary>
    void FrameFreed(Pfn pfn);

    /// <summary>
    /// One swap I/O request ended: <paramref name="pages"/> pages to (<paramref name="write"/>) or from contiguous slots
    /// from <paramref name="firstSlot"/> on, <paramref name="sameFilled"/> of them zero-filled pages the swap area keeps
    /// without device I/O, <paramref name="ok"/> when the device completed it.
    /// </summary>
    void SwapIo(bool write, ulong firstSlot, int pages, int sameFilled, bool ok, long startTimestamp)
    {
    }

    /// <summary>KSM merged the page at <paramref name="address"/> of <paramref name="mm"/> (frame <paramref name="pfn"/>) into the KSM page <paramref name="kpfn"/> (the zero page for a zero-filled page).</summary>
    void KsmMerged(Mm mm, Hva address, Pfn pfn, Pfn kpfn, long startTimestamp)
    {
    }

    /// <summary>
    /// One migration attempt of <paramref name="pages"/> pages (1, or 512 for a huge page) from frame <paramref name="pfn"/> on
    /// node <paramref name="fromNode"/> to node <paramref name="toNode"/> ended with <paramref name="failure"/>
    /// (<see cref="MigrationFailure.None"/>: moved), done for process <paramref name="mm"/> (the page may be shared).
    /// </summary>
    void PageMigrated(Mm mm, Pfn pfn, int fromNode, int toNode, int pages, MigrationFailure failure, long startTimestamp)
    {
    }

    /// <summary>The huge leaf at <paramref name="hugeAddress"/> of <paramref name="mm"/> was split into 512 PTEs.</summary>
    void HugeSplit(Mm mm, Hva hugeAddress, long startTimestamp)
    {
    }

    /// <summary>A collapse of the 2 MiB at <paramref name="hugeAddress"/> of <paramref name="mm"/> that got past its first scan ended with <paramref name="result"/>.</summary>
    void HugeCollapse(Mm mm, Hva hugeAddress, CollapseResult result, long startTimestamp)
    {
    }
}
