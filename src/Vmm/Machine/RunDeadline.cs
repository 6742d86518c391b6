using System.Diagnostics;

namespace Hypervisor.Vmm.Machine;

/// <summary>
/// A run's wall-clock timeout: cancels the VM's stop token once <c>limit</c> has passed on the run's own clock
/// (<see cref="Stopwatch"/>), never earlier. A timer alone can fire a few milliseconds early (the runtime's timers use
/// the coarse tick count), so a tick that comes early re-arms for the rest.
/// </summary>
/// <remarks>Lock order: this deadline's gate, then whatever the token's callbacks take (the kvm accelerator's
/// watchdog). After <see cref="Dispose"/> returns the token is never cancelled by this deadline.</remarks>
internal sealed class RunDeadline : IDisposable
{
    private static readonly TimeSpan Slack = TimeSpan.FromMilliseconds(1);

    private readonly object _gate = new();
    private readonly CancellationTokenSource _target;
    private readonly long _start;
    private readonly TimeSpan _limit;
    private readonly Timer _timer;
    private bool _disposed;
    private bool _fired;

    /// <summary>Arms the deadline.</summary>
    /// <param name="target">Cancelled at the deadline.</param>
    /// <param name="start">The run's start, a <see cref="Stopwatch.GetTimestamp"/> value.</param>
    /// <param name="limit">How long after <paramref name="start"/> the run may last (positive).</param>
    public RunDeadline(CancellationTokenSource target, long start, TimeSpan limit)
    {
        _target = target;
        _start = start;
        _limit = limit;
        _timer = new Timer(static d => ((RunDeadline)d!).Tick(), this, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
        _timer.Change(limit, Timeout.InfiniteTimeSpan);
    }

    /// <summary>True once the deadline cancelled the token.</summary>
    public bool Fired
    {
        get
        {
            lock (_gate)
            {
                return _fired;
            }
        }
    }

    /// <summary>Disarms the deadline.</summary>
    public void Dispose()
    {
        lock (_gate)
        {
            _disposed = true;
        }

        _timer.Dispose();
    }

    private void Tick()
    {
        lock (_gate)
        {
            if (_disposed || _fired)
            {
                return;
            }

            var left = _limit - Stopwatch.GetElapsedTime(_start);
            if (left > TimeSpan.Zero)
            {
                _timer.Change(left + Slack, Timeout.InfiniteTimeSpan);
                return;
            }

            _fired = true;
            _target.Cancel();
        }
    }
}
