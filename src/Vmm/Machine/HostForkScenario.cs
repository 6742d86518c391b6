using System.Diagnostics;
using Hypervisor.Vmm.Tracing;
using HostProcess = Hypervisor.HostMm.Mm;

namespace Hypervisor.Vmm.Machine;

/// <summary>
/// A fork-based snapshot taken again and again under a running guest: a host thread forks the VM's host
/// process every <c>interval</c>, keeps the child (the snapshot) briefly, and lets it exit. Each fork
/// write-protects guest RAM copy-on-write inside a notifier start/end, so the secondary MMU zaps its sptes
/// and shoots down the vCPU TLBs; the guest's next writes fault through get-user-pages and break
/// copy-on-write. The guest must not notice anything but time.
/// </summary>
/// <remarks>Runs on its own thread; host operations reach the vCPU only through the notifier chain.</remarks>
public sealed class HostForkScenario : IDisposable
{
    private readonly HostProcess _process;
    private readonly TimeSpan _interval;
    private readonly ManualResetEventSlim _stop = new();
    private readonly Thread _thread;
    private readonly TraceRecorder? _trace;
    private long _forks;

    /// <summary>Starts forking <paramref name="process"/> every <paramref name="interval"/>; each fork is a <c>host_fork</c> span in <paramref name="trace"/>, if any.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="interval"/> is negative.</exception>
    public HostForkScenario(HostProcess process, TimeSpan interval, TraceRecorder? trace = null)
    {
        _trace = trace;
        ArgumentNullException.ThrowIfNull(process);
        ArgumentOutOfRangeException.ThrowIfLessThan(interval, TimeSpan.Zero);
        _process = process;
        _interval = interval;
        _thread = new Thread(Loop) { IsBackground = true, Name = "host-fork" };
        _thread.Start();
    }

    /// <summary>Snapshots taken so far.</summary>
    public long Forks => Interlocked.Read(ref _forks);

    /// <summary>What stopped the scenario early, if anything did.</summary>
    public Exception? Failure { get; private set; }

    /// <summary>Stops forking and waits for the last snapshot to exit.</summary>
    public void Dispose()
    {
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
                var started = _trace is null ? 0 : Stopwatch.GetTimestamp();
                var snapshot = _process.Fork();
                _trace?.Complete(TraceEventTypes.HostFork, TraceRecorder.HostPid, started);
                Interlocked.Increment(ref _forks);
                _stop.Wait(_interval);
                snapshot.Exit();
            }
        }
        catch (Exception exception)
        {
            Failure = exception;
        }
    }
}
