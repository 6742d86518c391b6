using System.Diagnostics;
using Hypervisor.HostMm.Reclaim;
using Hypervisor.Vmm.Tracing;

namespace Hypervisor.Vmm.Machine;

/// <summary>
/// The background reclaimer (Linux's kswapd) of one VM's host: a thread that sleeps in
/// <see cref="Reclaimer.WaitForWork"/> until an allocation finds memory low (or a poll interval passes) and then runs
/// <see cref="Reclaimer.Step"/>, so the vCPU's own allocations rarely have to reclaim (direct reclaim,
/// <c>allocstall</c>).
/// </summary>
/// <remarks>
/// <para>Lifetime: started by the constructor, stopped and joined by <see cref="Dispose"/> (at most one poll interval
/// plus one step later). An exception from the reclaimer ends the thread, is kept in <see cref="Failure"/> and is
/// reported through the callback given to the constructor (the VM stops with an internal error naming it) — never
/// lost.</para>
/// <para>Locks: the thread takes only the reclaimer's locks, in the host's order (<see cref="Reclaimer"/>); it never
/// holds one while waiting.</para>
/// </remarks>
public sealed class ReclaimDaemon : IDisposable
{
    /// <summary>Pages one <see cref="Reclaimer.Step"/> may reclaim: 8 batches of Linux's 32.</summary>
    public const long DefaultBudgetPages = 256;

    /// <summary>How long the thread sleeps without a wake-up before it checks the watermarks again.</summary>
    public static readonly TimeSpan PollInterval = TimeSpan.FromMilliseconds(50);

    private readonly Reclaimer _reclaimer;
    private readonly long _budgetPages;
    private readonly Action<Exception>? _onFailure;
    private readonly Action? _afterStep;
    private readonly Thread _thread;
    private readonly TraceRecorder? _trace;

    // Held around each step; Pause takes it so that no step is in flight until Resume (lock order: the pauser's own
    // locks, if any, come before it; the step takes the reclaimer's locks inside it).
    private readonly Lock _stepLock = new();
    private volatile bool _stopping;
    private long _steps;
    private long _reclaimed;
    private bool _disposed;

    /// <summary>Starts the thread.</summary>
    /// <param name="reclaimer">The host's reclaimer.</param>
    /// <param name="onFailure">Called once, on the daemon's thread, with the exception that stopped it.</param>
    /// <param name="budgetPages">Pages per step, at least 1.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="budgetPages"/> is not positive.</exception>
    /// <param name="afterStep">Called on the daemon's thread after each step that scanned pages, with the daemon paused
    /// (the step lock held: <see cref="Pause"/> from the same thread does not wait), e.g. to audit after every batch.</param>
    /// <param name="trace">Where each step that scanned pages is recorded as an <c>mm_vmscan_kswapd</c> span, or null.</param>
    public ReclaimDaemon(Reclaimer reclaimer, Action<Exception>? onFailure = null, long budgetPages = DefaultBudgetPages, Action? afterStep = null, TraceRecorder? trace = null)
    {
        ArgumentNullException.ThrowIfNull(reclaimer);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(budgetPages);
        _reclaimer = reclaimer;
        _budgetPages = budgetPages;
        _onFailure = onFailure;
        _afterStep = afterStep;
        _trace = trace;
        _thread = new Thread(Loop) { IsBackground = true, Name = "kswapd" };
        _thread.Start();
    }

    /// <summary>Steps that found work.</summary>
    public long Steps => Interlocked.Read(ref _steps);

    /// <summary>Pages the daemon reclaimed.</summary>
    public long PagesReclaimed => Interlocked.Read(ref _reclaimed);

    /// <summary>What stopped the daemon early, if anything did.</summary>
    public Exception? Failure { get; private set; }

    /// <summary>
    /// Waits for the step in flight, if any, and keeps the daemon from starting another until <see cref="Resume"/>: with
    /// the vCPUs at a quiescent point too, no host operation is in flight (for audits). Pause and Resume pair on one thread.
    /// </summary>
    public void Pause() => _stepLock.Enter();

    /// <summary>Lets the daemon step again after <see cref="Pause"/>.</summary>
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
        _stopping = true;
        _thread.Join();
    }

    private void Loop()
    {
        try
        {
            while (!_stopping)
            {
                if (!_reclaimer.WaitForWork(PollInterval) || _stopping)
                {
                    continue;
                }

                long got;
                lock (_stepLock)
                {
                    // The counters snapshot costs a read of every counter: taken only when a hook wants to know.
                    var before = _afterStep is null && _trace is null ? default : _reclaimer.Stats;
                    var started = _trace is null ? 0 : Stopwatch.GetTimestamp();
                    got = _stopping ? 0 : _reclaimer.Step(_budgetPages);
                    if (_afterStep is not null || _trace is not null)
                    {
                        var after = _reclaimer.Stats;
                        if (after.PgscanKswapd != before.PgscanKswapd)
                        {
                            _trace?.Complete(TraceEventTypes.KswapdStep, TraceRecorder.HostPid, started, got, after.Pswpout - before.Pswpout, after.PgscanKswapd - before.PgscanKswapd);
                            _afterStep?.Invoke();
                        }
                    }
                }

                if (got > 0)
                {
                    Interlocked.Increment(ref _steps);
                    Interlocked.Add(ref _reclaimed, got);
                }
                else
                {
                    // Nothing reclaimable right now (every page isolated or referenced, or swap full): do not spin.
                    Thread.Sleep(1);
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
