namespace Hypervisor.HostMm.Huge;

/// <summary>
/// khugepaged: <see cref="Step"/> walks the processes' huge-page-eligible memory 2 MiB at a time from where it stopped
/// and collapses each range whose small pages are exclusive, resident enough (at most <see cref="MaxPtesNone"/> none
/// or zero-page entries) and referenced (a CPU accessed bit or a secondary MMU's <c>test_young</c>, khugepaged's use of
/// that notifier op) into one huge page, in <c>collapse_huge_page</c>'s order (§3): mmap lock for write → start (Clear,
/// the 2 MiB) → PD entry cleared and the TLBs flushed → end → pages copied → huge leaf installed → small pages and the
/// PTE table freed. Secondary MMUs refault and may then map the 2 MiB with one leaf.
/// </summary>
public sealed class Khugepaged
{
    private readonly Host _host;
    private readonly Lock _scanLock = new();
    private readonly long[] _skipped = new long[Enum.GetValues<CollapseResult>().Length];
    private int _maxPtesNone = 511;
    private int _nextMm;
    private long _collapsed;
    private long _allocFailed;
    private long _fullScans;
    private long _scanned;

    internal Khugepaged(Host host) => _host = host;

    /// <summary>
    /// Most none or zero-page entries a range may have and still collapse (Linux's <c>max_ptes_none</c>, default 511:
    /// one resident page is enough; 0 collapses only fully populated ranges).
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">Outside 0 to 511.</exception>
    public int MaxPtesNone
    {
        get => Volatile.Read(ref _maxPtesNone);
        set
        {
            ArgumentOutOfRangeException.ThrowIfNegative(value);
            ArgumentOutOfRangeException.ThrowIfGreaterThan(value, PageTables.HostPageTable.HugePageFrames - 1);
            Volatile.Write(ref _maxPtesNone, value);
        }
    }

    /// <summary>A snapshot of the counters.</summary>
    public KhugepagedStats Stats
    {
        get
        {
            var skipped = new Dictionary<CollapseResult, long>();
            foreach (var result in Enum.GetValues<CollapseResult>())
            {
                if (result != CollapseResult.Collapsed)
                {
                    skipped[result] = Volatile.Read(ref _skipped[(int)result]);
                }
            }

            return new KhugepagedStats
            {
                PagesCollapsed = Volatile.Read(ref _collapsed),
                CollapseAllocFailed = Volatile.Read(ref _allocFailed),
                FullScans = Volatile.Read(ref _fullScans),
                RangesScanned = Volatile.Read(ref _scanned),
                Skipped = skipped,
            };
        }
    }

    /// <summary>
    /// Scans up to <paramref name="budgetPages"/> pages (512 per 2 MiB range, Linux's <c>pages_to_scan</c> default is
    /// 4096), process after process, collapsing what qualifies. Returns the ranges collapsed. Does nothing while the host's
    /// mode is <see cref="ThpMode.Never"/>.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="budgetPages"/> is not positive.</exception>
    public int Step(long budgetPages)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(budgetPages);
        if (_host.Options.TransparentHugePages == ThpMode.Never)
        {
            return 0;
        }

        lock (_scanLock)
        {
            var mms = _host.Mms.ToArray();
            var collapsed = 0;
            var left = budgetPages;
            for (var visited = 0; visited < mms.Length && left > 0; visited++)
            {
                var mm = mms[_nextMm % mms.Length];
                var finished = true;
                try
                {
                    finished = mm.KhugepagedScan(ref left, MaxPtesNone, this, ref collapsed);
                }
                catch (MmExitedException)
                {
                    // exited between the snapshot and the scan
                }

                if (!finished)
                {
                    break; // the budget ran out inside this process: continue here next step
                }

                _nextMm = (_nextMm + 1) % mms.Length;
                if (_nextMm == 0)
                {
                    Interlocked.Increment(ref _fullScans);
                }
            }

            return collapsed;
        }
    }

    /// <summary>Counts one range's result.</summary>
    internal void Count(CollapseResult result)
    {
        Interlocked.Increment(ref _scanned);
        switch (result)
        {
            case CollapseResult.Collapsed:
                Interlocked.Increment(ref _collapsed);
                break;
            case CollapseResult.AllocationFailed:
                Interlocked.Increment(ref _allocFailed);
                Interlocked.Increment(ref _skipped[(int)result]);
                break;
            default:
                Interlocked.Increment(ref _skipped[(int)result]);
                break;
        }
    }
}
