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
/// <para>Lifetime, failures and locks: <see cref="StepDaemon"/>. Dispose returns within one poll interval plus one step.
/// The thread takes only the reclaimer's locks, in the host's order (<see cref="Reclaimer"/>).</para>
/// </remarks>
public sealed class ReclaimDaemon : StepDaemon
{
    /// <summary>Pages one <see cref="Reclaimer.Step"/> may reclaim: 8 batches of Linux's 32.</summary>
    public const long DefaultBudgetPages = 256;

    /// <summary>How long the thread sleeps without a wake-up before it checks the watermarks again.</summary>
    public static readonly TimeSpan PollInterval = TimeSpan.FromMilliseconds(50);

    private readonly Reclaimer _reclaimer;
    private readonly long _budgetPages;
    private readonly Action? _afterStep;
    private readonly TraceRecorder? _trace;
    private long _steps;
    private long _reclaimed;

    /// <summary>Starts the thread.</summary>
    /// <param name="reclaimer">The host's reclaimer.</param>
    /// <param name="onFailure">Called once, on the daemon's thread, with the exception that stopped it.</param>
    /// <param name="budgetPages">Pages per step, at least 1.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="budgetPages"/> is not positive.</exception>
    /// <param name="afterStep">Called on the daemon's thread after each step that scanned pages, with the daemon paused
    /// (the step lock held: <see cref="StepDaemon.Pause"/> from the same thread does not wait), e.g. to audit after every batch.</param>
    /// <param name="trace">Where each step that scanned pages is recorded as an <c>mm_vmscan_kswapd</c> span, or null.</param>
    public ReclaimDaemon(Reclaimer reclaimer, Action<Exception>? onFailure = null, long budgetPages = DefaultBudgetPages, Action? afterStep = null, TraceRecorder? trace = null)
        : base("kswapd", onFailure)
    {
        ArgumentNullException.ThrowIfNull(reclaimer);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(budgetPages);
        _reclaimer = reclaimer;
        _budgetPages = budgetPages;
        _afterStep = afterStep;
        _trace = trace;
        Start();
    }

    /// <summary>Steps that found work.</summary>
    public long Steps => Interlocked.Read(ref _steps);

    /// <summary>Pages the daemon reclaimed.</summary>
    public long PagesReclaimed => Interlocked.Read(ref _reclaimed);

    /// <inheritdoc />
    protected override bool WaitForWork() => _reclaimer.WaitForWork(PollInterval);

    /// <inheritdoc />
    protected override long StepLocked()
    {
        // The counters snapshot costs a read of every counter: taken only when a hook wants to know.
        var before = _afterStep is null && _trace is null ? default : _reclaimer.Stats;
        var started = _trace is null ? 0 : Stopwatch.GetTimestamp();
        var got = _reclaimer.Step(_budgetPages);
        if (_afterStep is not null || _trace is not null)
        {
            var after = _reclaimer.Stats;
            if (after.PgscanKswapd != before.PgscanKswapd)
            {
                _trace?.Complete(TraceEventTypes.KswapdStep, TraceRecorder.HostPid, started, got, after.Pswpout - before.Pswpout, after.PgscanKswapd - before.PgscanKswapd);
                _afterStep?.Invoke();
            }
        }

        return got;
    }

    /// <inheritdoc />
    protected override void AfterStep(long work)
    {
        if (work > 0)
        {
            Interlocked.Increment(ref _steps);
            Interlocked.Add(ref _reclaimed, work);
        }
        else
        {
            // Nothing reclaimable right now (every page isolated or referenced, or swap full): do not spin.
            Sleep(1);
        }
    }
}
