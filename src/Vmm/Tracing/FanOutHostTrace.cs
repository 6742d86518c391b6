using Hypervisor.HostMm;
using Hypervisor.HostMm.Huge;
using Hypervisor.HostMm.Migration;
using Hypervisor.Notifier;

namespace Hypervisor.Vmm.Tracing;

/// <summary>Passes every host step to two traces in turn (e.g. a demo's notifier timeline, then the trace file).</summary>
/// <param name="first">The first trace.</param>
/// <param name="second">The second trace.</param>
public sealed class FanOutHostTrace(IHostTrace first, IHostTrace second) : IHostTrace
{
    /// <inheritdoc />
    public void PteChanged(Mm mm, Hva address, HostPte before, HostPte after)
    {
        first.PteChanged(mm, address, before, after);
        second.PteChanged(mm, address, before, after);
    }

    /// <inheritdoc />
    public void TlbFlushed(Mm mm, Hva start, Hva end)
    {
        first.TlbFlushed(mm, start, end);
        second.TlbFlushed(mm, start, end);
    }

    /// <inheritdoc />
    public void FrameFreed(Pfn pfn)
    {
        first.FrameFreed(pfn);
        second.FrameFreed(pfn);
    }

    /// <inheritdoc />
    public void SwapIo(bool write, ulong firstSlot, int pages, int sameFilled, bool ok, long startTimestamp)
    {
        first.SwapIo(write, firstSlot, pages, sameFilled, ok, startTimestamp);
        second.SwapIo(write, firstSlot, pages, sameFilled, ok, startTimestamp);
    }

    /// <inheritdoc />
    public void KsmMerged(Mm mm, Hva address, Pfn pfn, Pfn kpfn, long startTimestamp)
    {
        first.KsmMerged(mm, address, pfn, kpfn, startTimestamp);
        second.KsmMerged(mm, address, pfn, kpfn, startTimestamp);
    }

    /// <inheritdoc />
    public void PageMigrated(Mm mm, Pfn pfn, int fromNode, int toNode, int pages, MigrationFailure failure, long startTimestamp)
    {
        first.PageMigrated(mm, pfn, fromNode, toNode, pages, failure, startTimestamp);
        second.PageMigrated(mm, pfn, fromNode, toNode, pages, failure, startTimestamp);
    }

    /// <inheritdoc />
    public void HugeSplit(Mm mm, Hva hugeAddress, long startTimestamp)
    {
        first.HugeSplit(mm, hugeAddress, startTimestamp);
        second.HugeSplit(mm, hugeAddress, startTimestamp);
    }

    /// <inheritdoc />
    public void HugeCollapse(Mm mm, Hva hugeAddress, CollapseResult result, long startTimestamp)
    {
        first.HugeCollapse(mm, hugeAddress, result, startTimestamp);
        second.HugeCollapse(mm, hugeAddress, result, startTimestamp);
    }
}
