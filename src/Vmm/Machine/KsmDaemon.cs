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
/// <para>Lifetime: started by the constructor, stopped and joined by <see cref="Dispose"/> (at most one sleep plus one
/// batch later). An exception from the scanner ends the thread, is kept in <see cref="Failure"/> and is reported through
/// the callback given to the constructor — never lost.</para>
/// <para>Locks: the step lock is held around each batch (and its after-step hook); the scanner takes the host's locks
/// inside it. <see cref="Pause"/> takes the step lock, so a pauser's own locks come before it.</para>
/// </remarks>
public sealed class KsmDaemon : IDisposable
{
    private readonly KsmScanner _scanner;
    private readonly Action<Exception>? _onFailure;
    private readonly Action? _afterStep;
    private readonly Thread _thread;
    private readonly TraceRecorder? _trace;
    private readonly Lock _stepLock = new();
    private readonly ManualResetEventSlim _stop = new();
    private long _steps;
    private long _pagesScanned;
    private bool _disposed;

    /// <summary>Starts the thread.</summary>
    /// <param name="scanner">The host's scanner, its knobs set.</param>
    /// <param name="onFailure">Called once, on the daemon's thread, with the exception that stopped it.</param>
    /// <param name="afterStep">Called on the daemon's thread after each batch that scanned pages, with the daemon
    /// paused (the step lock held), e.g. to audit after every batch.</param>
    /// <param name="trace">Where each batch that scanned pages is recorded as a <c>ksm_scan</c> span, or null.</param>
    public KsmDaemon(KsmScanner scanner, Action<Exception>? onFailure = null, Action? afterStep = null, TraceRecorder? trace = null)
    {
        ArgumentNullException.ThrowIfNull(scanner);
        _scanner = scanner;
        _onFailure = onFailure;
        _afterStep = afterStep;
        _trace = trace;
        _thread = new Thread(Loop) { IsBackground = true, Name = "ksmd" };
        _thread.Start();
    }

    /// <summary>Batches that scanned at least one page.</summary>
    public long Steps => Interlocked.Read(ref _steps);

    /// <summary>Pages the daemon's batches scanned.</summary>
    public long PagesScanned => Interlocked.Read(ref _pagesScanned);

    /// <summary>What stopped the daemon early, if anything did.</summary>
    public Exception? Failure { get; private set; }

    /// <summary>
    /// Waits for the batch in flight, if any, and keeps the daemon from starting another until <see cref="Resume"/>.
    /// Pause and Resume pair on one thread.
    /// </summary>
    public void Pause() => _stepLock.Enter();

    /// <summary>Lets the daemon scan again after <see cref="Pause"/>.</summary>
    /// <exception cref="SynchronizationLockException">The calling thread did not pause the daemon.</exception>
    public void Resume() => _stepLock.Exit();

    /// <summary>Stops the thread and waits for it.</summary>
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        _stop.Set();
        _thread.Join();
        _stop.Dispose();
    }

    private void Loop()
    {
        try
        {
            while (!_stop.IsSet)
            {
                int scanned;
                lock (_stepLock)
                {
                    var merges = _trace is null ? 0 : _scanner.Stats.Merges;
                    var started = _trace is null ? 0 : Stopwatch.GetTimestamp();
                    scanned = _stop.IsSet ? 0 : _scanner.Step();
                    if (scanned > 0)
                    {
                        if (_trace is not null)
                        {
                            var after = _scanner.Stats;
                            _trace.Complete(TraceEventTypes.KsmScan, TraceRecorder.HostPid, started, scanned, after.Merges - merges, after.PagesSharing);
                        }

                        _afterStep?.Invoke();
                    }
                }

                if (scanned > 0)
                {
                    Interlocked.Increment(ref _steps);
                    Interlocked.Add(ref _pagesScanned, scanned);
                }

                // Linux's ksmd sleeps sleep_millisecs after every batch; with nothing to scan it waits as long.
                var sleep = _scanner.SleepMilliseconds;
                if (sleep > 0 || scanned == 0)
                {
                    _stop.Wait(Math.Max(sleep, 1));
                }
            }
        }
        catch (Exception exception)
        {
            Failure = exception;
            _onFailure?.Invoke(exception);
        }
    }
}
