namespace Hypervisor.HostMm.Migration;

/// <summary>
/// Automatic NUMA balancing (Linux's <c>task_numa_work</c> + <c>do_numa_page</c>): <see cref="Step"/> scans a window of
/// each process's memory and makes its resident PTEs PROT_NONE (<c>change_prot_numa</c>: start (ProtectionVma) → PTEs →
/// end → flush, so secondary MMUs zap the window); the next access to such a page is a hinting fault that makes it
/// accessible again with no notifier, counts it per node and migrates the page to the faulting thread's node
/// (<see cref="HostThread.CurrentNode"/>) when it is elsewhere and the VMA's policy allows. The cost a guest pays is
/// the zaps and the refaults; the gain is local memory.
/// </summary>
public sealed class NumaBalancer
{
    private readonly Host _host;
    private readonly Lock _scanLock = new();
    private int _nextMm;
    private long _pteUpdates;
    private long _hintFaults;
    private long _hintFaultsLocal;
    private long _pagesMigrated;
    private long _migrateFailed;
    private long _fullScans;

    internal NumaBalancer(Host host) => _host = host;

    /// <summary>
    /// Whether hinting faults migrate (Linux's <c>kernel.numa_balancing</c>); the scanner's <see cref="Step"/> runs only
    /// when it is on. Off by default.
    /// </summary>
    public bool Enabled { get; set; }

    /// <summary>A snapshot of the counters.</summary>
    public NumaBalancingStats Stats => new()
    {
        NumaPteUpdates = Volatile.Read(ref _pteUpdates),
        NumaHintFaults = Volatile.Read(ref _hintFaults),
        NumaHintFaultsLocal = Volatile.Read(ref _hintFaultsLocal),
        NumaPagesMigrated = Volatile.Read(ref _pagesMigrated),
        NumaMigrateFailed = Volatile.Read(ref _migrateFailed),
        FullScans = Volatile.Read(ref _fullScans),
    };

    /// <summary>
    /// Scans up to <paramref name="budgetPages"/> pages of address space, process after process from where the last step
    /// stopped (each process keeps its own cursor, like <c>mm-&gt;numa_scan_offset</c>), and makes the resident PTEs found
    /// PROT_NONE. Returns the PTEs changed. Nothing happens while <see cref="Enabled"/> is off.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="budgetPages"/> is not positive.</exception>
    public long Step(long budgetPages)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(budgetPages);
        if (!Enabled)
        {
            return 0;
        }

        lock (_scanLock)
        {
            var mms = _host.Mms.ToArray();
            if (mms.Length == 0)
            {
                return 0;
            }

            long changed = 0;
            var left = budgetPages;
            for (var visited = 0; visited < mms.Length && left > 0; visited++)
            {
                var mm = mms[_nextMm % mms.Length];
                try
                {
                    var (scanned, updated, wrapped) = mm.ChangeProtNuma(left);
                    left -= Math.Max(scanned, 1);
                    changed += updated;
                    if (!wrapped)
                    {
                        break; // the budget ran out inside this process: continue here next step
                    }
                }
                catch (MmExitedException)
                {
                    // exited between the snapshot and the scan
                }

                _nextMm = (_nextMm + 1) % mms.Length;
                if (_nextMm == 0)
                {
                    Interlocked.Increment(ref _fullScans);
                }
            }

            Interlocked.Add(ref _pteUpdates, changed);
            return changed;
        }
    }

    /// <summary>Counts a hinting fault, <paramref name="local"/> when the page was on the faulting thread's node.</summary>
    internal void CountHintFault(bool local)
    {
        Interlocked.Increment(ref _hintFaults);
        if (local)
        {
            Interlocked.Increment(ref _hintFaultsLocal);
        }
    }

    /// <summary>Counts a hinting fault's migration attempt.</summary>
    internal void CountMigration(bool migrated) => Interlocked.Increment(ref migrated ? ref _pagesMigrated : ref _migrateFailed);
}
