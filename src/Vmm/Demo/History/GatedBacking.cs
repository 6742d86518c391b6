using Hypervisor.GuestMmu.Backing;
using Hypervisor.Notifier;

namespace Hypervisor.Vmm.Demo.History;

/// <summary>
/// The secondary MMU's backing in a replayed race: the real process's (<see cref="HostProcessBacking"/>), known under the
/// MMU's <see cref="SecondaryMmuView"/>, with the fault's get-user-pages bracketed by two scheduler points
/// (<see cref="HistoryPoint.VcpuResolving"/>, <see cref="HistoryPoint.VcpuResolved"/>).
/// </summary>
internal sealed class GatedBacking : IGuestMemoryBacking
{
    private readonly HostProcessBacking _inner;
    private readonly StepScheduler _scheduler;

    /// <summary>Wraps <paramref name="inner"/>.</summary>
    public GatedBacking(HostProcessBacking inner, SecondaryMmuView view, StepScheduler scheduler)
    {
        _inner = inner;
        _scheduler = scheduler;
        Mm = view;
    }

    /// <summary>The frame the last resolve returned (default before any).</summary>
    public Pfn LastResolved { get; private set; }

    /// <inheritdoc />
    public IMm Mm { get; }

    /// <inheritdoc />
    public ulong TotalFrames => _inner.TotalFrames;

    /// <inheritdoc />
    public BackingPage Resolve(Hva address, bool write)
    {
        _scheduler.Hold(HistoryPoint.VcpuResolving);
        var page = _inner.Resolve(address, write);
        if (page.Succeeded)
        {
            LastResolved = page.Pfn;
        }

        _scheduler.Hold(HistoryPoint.VcpuResolved);
        return page;
    }

    /// <inheritdoc />
    public void Release(Pfn pfn) => _inner.Release(pfn);

    /// <inheritdoc />
    public void MarkDirty(Pfn pfn, ulong count) => _inner.MarkDirty(pfn, count);

    /// <inheritdoc />
    public nint FrameAddress(Pfn pfn) => _inner.FrameAddress(pfn);

    /// <inheritdoc />
    public BackingFrameState QueryFrame(Pfn pfn) => _inner.QueryFrame(pfn);

    /// <inheritdoc />
    public HostPte ReadPte(Hva address) => _inner.ReadPte(address);
}
