using Hypervisor.HostMm;
using Hypervisor.Notifier;

namespace Hypervisor.Vmm.Demo.Stress;

/// <summary>
/// madvise(MADV_DONTNEED) of a few guest data pages. DONTNEED drops the contents by definition (the pages read as zeros
/// afterwards; one dropped while the guest was writing it holds zeros where it was written before the drop), so the
/// verifier is told: the rule is that the host bumps each page's discard counter in the guest's control area to an odd
/// value before the madvise and to the next even value after it, and the guest accepts a page whose every word is zero
/// or what it wrote only when its counter was odd when it wrote the page or has moved since (a seqcount: a discard that
/// could have hit the page after the write moved the counter before it zeroed anything). Every other difference is a
/// corrupted page. In the DMA buffers' chunk the rule is the same with one counter for the whole chunk
/// (<see cref="StressContext.DmaDiscards"/>), which the DMA mechanism's verifier reads.
/// </summary>
internal sealed class DontNeedMechanism(StressContext context) : StressMechanism
{
    public override StressMechanismKind Kind => StressMechanismKind.DontNeed;

    public override string Name => "madvise(DONTNEED)";

    public override string OperationName => "ranges dropped";

    public override string EffectName => "pages dropped";

    protected override void Execute(in StressOperation operation, CancellationToken stop)
    {
        var layout = context.Memory.Layout;
        var firstPage = ((long)operation.Chunk * StressGuestLayout.ChunkPages) + operation.Page;
        var start = layout.ChunkGpa(operation.Chunk) + ((ulong)operation.Page * Paging.PageSize);
        var dma = layout.IsDmaChunk(operation.Chunk);
        Announce(dma, layout, firstPage, operation.Pages);
        try
        {
            context.Process.Madvise(context.Memory.HvaOf(start), (ulong)operation.Pages * Paging.PageSize, Advice.DontNeed);
        }
        finally
        {
            Announce(dma, layout, firstPage, operation.Pages);
        }

        AddEffect(operation.Pages);
    }

    private void Announce(bool dma, StressGuestLayout layout, long firstPage, int pages)
    {
        if (dma)
        {
            context.DmaDiscards.Bump();
        }
        else
        {
            Bump(layout, firstPage, pages);
        }
    }

    /// <summary>Moves each page's counter on by one (only this thread writes them).</summary>
    private void Bump(StressGuestLayout layout, long firstPage, int pages)
    {
        for (var page = firstPage; page < firstPage + pages; page++)
        {
            var gpa = layout.DiscardCounterGpa(page);
            context.Memory.WriteU32(gpa, unchecked(context.Memory.ReadU32(gpa) + 1));
        }
    }
}
