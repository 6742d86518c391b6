using System.Globalization;

namespace Hypervisor.HostMm.Swap;

/// <summary>
/// The window rules of Linux's cluster swap readahead (<c>swapin_nr_pages</c> and <c>swap_cluster_readahead</c>),
/// with no I/O: given the slot a fault needs, which slots to read. The window is <c>hits + 2</c> rounded up to a
/// power of two of at least 4, where hits are read-ahead pages found in the swap cache since the last window;
/// with no hits it is 1, or 2 when the slot is adjacent (±1) to the previous fault's; it is capped at
/// <c>2^PageCluster</c> and never drops below half the previous window. The slots are the window-aligned block
/// around the target, slot 0 and slots past the device skipped, the target last.
/// </summary>
/// <remarks>
/// Thread safety: as Linux's (global atomics read and written without a lock), the hit count is exact
/// (interlocked) and the previous offset and window are racy hints. Callers on several threads get valid windows;
/// which thread's history they reflect is unspecified.
/// </remarks>
public sealed class SwapReadahead
{
    /// <summary>Linux's default <c>vm.page-cluster</c>: 3, at most 8 pages per swap-in.</summary>
    public const int DefaultPageCluster = 3;

    /// <summary>Largest <c>page_cluster</c> accepted: 9, a window of one whole cluster (512 slots).</summary>
    public const int MaxPageCluster = 9;

    private long _pendingHits;
    private long _hits;
    private long _prevOffset;
    private int _lastWindow;

    /// <summary>Creates the state with no history (previous offset 0, previous window 0).</summary>
    /// <param name="pageCluster">log2 of the most slots read per fault: 0 (no readahead) to <see cref="MaxPageCluster"/>.</param>
    /// <exception cref="SwapConfigurationException">The page cluster is out of range.</exception>
    public SwapReadahead(int pageCluster = DefaultPageCluster)
    {
        ValidatePageCluster(pageCluster, nameof(pageCluster));
        PageCluster = pageCluster;
    }

    /// <summary>log2 of the most slots one fault reads.</summary>
    public int PageCluster { get; }

    /// <summary>The most slots one fault reads: <c>2^PageCluster</c>.</summary>
    public int MaxPages => 1 << PageCluster;

    /// <summary>Read-ahead pages later hit, since creation (<c>swap_ra_hit</c>).</summary>
    public long Hits => Interlocked.Read(ref _hits);

    /// <summary>The window the last <see cref="NextWindow"/> or <see cref="Plan"/> chose.</summary>
    public int LastWindow => Volatile.Read(ref _lastWindow);

    /// <summary>
    /// Records that a fault found a read-ahead page in the swap cache (the caller clears the page's readahead mark
    /// so that each page counts once). The next window grows with it.
    /// </summary>
    public void RecordHit()
    {
        Interlocked.Increment(ref _pendingHits);
        Interlocked.Increment(ref _hits);
    }

    /// <summary>
    /// The window (1 to <see cref="MaxPages"/>, a power of two or 2) for a fault on <paramref name="slot"/>, taking
    /// the pending hits and advancing the history as <c>swapin_nr_pages</c> does.
    /// </summary>
    public int NextWindow(ulong slot)
    {
        var maxPages = MaxPages;
        if (maxPages <= 1)
        {
            return 1;
        }

        var hits = Interlocked.Exchange(ref _pendingHits, 0);
        var prev = (ulong)Volatile.Read(ref _prevOffset);
        var pages = Window(prev, slot, hits, maxPages, Volatile.Read(ref _lastWindow));
        if (hits == 0)
        {
            Volatile.Write(ref _prevOffset, (long)slot);
        }

        Volatile.Write(ref _lastWindow, pages);
        return pages;
    }

    /// <summary>
    /// Plans the reads for a fault on <paramref name="slot"/> of a device of <paramref name="slotCount"/> slots:
    /// fills <paramref name="slots"/> (at least <see cref="MaxPages"/> long) with the window-aligned block around
    /// it, slot 0 and slots at or past <paramref name="slotCount"/> left out, in ascending order with the target
    /// moved last; returns how many. The caller reads those it can take HAS_CACHE on and marks all but the target
    /// as read ahead (<c>swap_ra</c>).
    /// </summary>
    public int Plan(ulong slot, ulong slotCount, Span<ulong> slots)
    {
        if (slot == 0 || slot >= slotCount)
        {
            throw new ArgumentOutOfRangeException(
                nameof(slot), slot, string.Create(CultureInfo.InvariantCulture, $"swap slot 0x{slot:x} is not a data slot of a device of 0x{slotCount:x} slots"));
        }

        if (slots.Length < MaxPages)
        {
            throw new ArgumentException($"the plan buffer holds {slots.Length} slots but a window can be {MaxPages}", nameof(slots));
        }

        var mask = (ulong)NextWindow(slot) - 1;
        var start = slot & ~mask;
        var end = Math.Min(slot | mask, slotCount - 1);
        if (start == 0)
        {
            start = 1; // slot 0 is the header
        }

        var n = 0;
        for (var s = start; s <= end; s++)
        {
            if (s != slot)
            {
                slots[n++] = s;
            }
        }

        slots[n++] = slot;
        return n;
    }

    /// <summary>Linux's <c>__swapin_nr_pages</c>: the window from the previous offset and window and the hits since.</summary>
    internal static int Window(ulong prevOffset, ulong offset, long hits, int maxPages, int prevWindow)
    {
        var pages = hits + 2;
        if (pages == 2)
        {
            // No hits to judge by: read 2 only when the fault is adjacent to the previous one, else the page alone.
            if (offset != prevOffset + 1 && offset != prevOffset - 1)
            {
                pages = 1;
            }
        }
        else
        {
            long roundUp = 4;
            while (roundUp < pages)
            {
                roundUp <<= 1;
            }

            pages = roundUp;
        }

        if (pages > maxPages)
        {
            pages = maxPages;
        }

        var floor = prevWindow / 2; // don't shrink readahead too fast
        return (int)Math.Max(pages, floor);
    }

    /// <summary>Checks a <c>page_cluster</c> value.</summary>
    internal static void ValidatePageCluster(int pageCluster, string paramName)
    {
        if (pageCluster < 0 || pageCluster > MaxPageCluster)
        {
            throw new SwapConfigurationException(
                SwapRule.PageClusterOutOfRange,
                string.Create(CultureInfo.InvariantCulture, $"page_cluster {pageCluster} is out of range: readahead reads 2^page_cluster slots, page_cluster 0 to {MaxPageCluster}"),
                paramName);
        }
    }
}
