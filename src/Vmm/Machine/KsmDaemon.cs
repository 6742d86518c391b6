using System.Diagnostics;
using Hypervisor.HostMm.Ksm;
using Hypervisor.Vmm.Tracing;

namespace Hypervisor.Vmm.Machine;

/// <summary>
/// The host's KSM scanner thread (Linux's ksmd): runs <see cref="KsmScanner.Step()"/> (one batch of
/// <see cref="KsmScanner.PagesToScan"/> pages) and sleeps <see cref="KsmScanner.SleepMilliseconds"/> between batches,
/// for as long as it runs. While the scanner's <see cref="KsmScanner.Run"/> is not <see cref="KsmRunMode.Merge"/> a
/// step scans nothing and the thread only sleeps.
/// </summary>
/// <remarks>
/// <para>Lifetime, failures and locks: <see cref="StepDaemon"/>. Dispose returns within one sleep plus one batch.</para>
/// </remarks>
public sealed class KsmDaemon : StepDaemon
{
    private readonly KsmScanner _scanner;
    private readonly Action? _afterStep;
    private readonly TraceRecorder? _trace;
    private long _steps;
    private long _pagesScanned;

    /// <summary>Starts the thread.</summary>
    /// <param name="scanner">The host's scanner, its knobs set.</param>
    /// <param name="onFailure">Called once, on the daemon's thread, with the exception that stopped it.</param>
    /// <param name="afterStep">Called on the daemon's thread after each batch that scanned pages, with the daemon
    /// paused (the step lock held), e.g. to audit after every batch.</param>
    /// <param name="trace">Where each batch that scanned pages is recorded as a <c>ksm_scan</c> span, or null.</param>
    public KsmDaemon(KsmScanner scanner, Action<Exception>? onFailure = null, Action? afterStep = null, TraceRecorder? trace = null)
        : base("ksmd", onFailure)
    {
        ArgumentNullException.ThrowIfNull(scanner);
        _scanner = scanner;
        _afterStep = afterStep;
        _trace = trace;
        Start();
    }

    /// <summary>Batches that scanned at least one page.</summary>
    public long Steps => Interlocked.Read(ref _steps);

    /// <summary>Pages the daemon's batches scanned.</summary>
    public long PagesScanned => Interlocked.Read(ref _pagesScanned);

    /// <inheritdoc />
    protected override bool WaitForWork() => true; // ksmd paces itself after each batch (AfterStep)

    /// <inheritdoc />
    protected override long StepLocked()
    {
        var merges = _trace is null ? 0 : _scanner.Stats.Merges;
        var started = _trace is null ? 0 : Stopwatch.GetTimestamp();
        var scanned = _scanner.Step();
        if (scanned > 0)
        {
            if (_trace is not null)
            {
                var after = _scanner.Stats;
                _trace.Complete(TraceEventTypes.KsmScan, TraceRecorder.HostPid, started, scanned, after.Merges - merges, after.PagesSharing);
            }

            _afterStep?.Invoke();
        }

        return scanned;
    }

    /// <inheritdoc />
    protected override void AfterStep(long work)
    {
        if (work > 0)
        {
            Interlocked.Increment(ref _steps);
            Interlocked.Add(ref _pagesScanned, work);
        }

        // Linux's ksmd sleeps sleep_millisecs after every batch; with nothing to scan it waits as long.
        var sleep = _scanner.SleepMilliseconds;
        if (sleep > 0 || work == 0)
        {
            Sleep(Math.Max(sleep, 1));
        }
    }
}
