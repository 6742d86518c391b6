using Hypervisor.HostMm;
using Hypervisor.HostMm.Frames;
using Hypervisor.HostMm.PageTables;
using Hypervisor.Notifier;

namespace Hypervisor.GuestMmu.Tests.Mmu;

/// <summary>
/// Counts mappings of KSM pages that reclaim replaced by a swap entry (try_to_unmap_one over a KSM page's sharers): the
/// PTE is cleared, then the swap entry installed, on one thread under the page-table lock, so the frame of the clear
/// is remembered per thread until the install.
/// </summary>
internal sealed class KsmSwapOutCounter(HostMemory memory) : IHostTrace
{
    [ThreadStatic]
    private static (Mm Mm, Hva Address, Pfn Pfn)? _cleared;

    private long _ksmSwapEntries;

    /// <summary>Swap entries that replaced a mapping of a KSM page.</summary>
    public long KsmSwapEntries => Interlocked.Read(ref _ksmSwapEntries);

    public void PteChanged(Mm mm, Hva address, HostPte before, HostPte after)
    {
        if (before.IsPresent && after.IsNone)
        {
            _cleared = (mm, address, before.Pfn);
            return;
        }

        if (before.IsNone && HostPteEncoding.Classify(after) == HostPteKind.Swap
            && _cleared is { } cleared && cleared.Mm == mm && cleared.Address == address
            && memory.Frame(cleared.Pfn).Has(FrameFlags.Ksm))
        {
            Interlocked.Increment(ref _ksmSwapEntries);
        }

        _cleared = null;
    }

    public void TlbFlushed(Mm mm, Hva start, Hva end)
    {
    }

    public void FrameFreed(Pfn pfn)
    {
    }
}
