namespace Hypervisor.Vmm.Machine;

/// <summary>
/// A host daemon's thread (kswapd, ksmd): waits for work, runs one step under the step lock, and goes on until disposed.
/// </summary>
/// <remarks>
/// <para>Lifetime: a derived constructor calls <see cref="Start"/> last, once its own fields are set; <see cref="Dispose"/>
/// stops and joins the thread (after at most one wait and one step). An exception from a step ends the thread, is kept
/// in <see cref="Failure"/> and is reported through the callback given to the constructor — never lost.</para>
/// <para>Locks: the step lock is held around each step (and the derived class's after-step hook inside it); the step
/// takes the host's locks inside it. <see cref="Pause"/> takes the step lock, so a pauser's own locks come before it;
/// the thread never holds the step lock while it waits.</para>
/// </remarks>
public abstract class StepDaemon : IDisposable
{
    private readonly Action<Exception>? _onFailure;
    private readonly Thread _thread;
    private readonly Lock _stepLock = new();
    private readonly ManualResetEventSlim _stop = new();
    private bool _disposed;

    /// <summary>Creates the thread (not started) named <paramref name="threadName"/>.</summary>
    /// <param name="threadName">The thread's name (Linux's daemon name).</param>
    /// <param name="onFailure">Called once, on the daemon's thread, with the exception that stopped it.</param>
    protected StepDaemon(string threadName, Action<Exception>? onFailure)
    {
        _onFailure = onFailure;
        _thread = new Thread(Loop) { IsBackground = true, Name = threadName };
    }

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
        _stop.Set();
        _thread.Join();
        _stop.Dispose();
        GC.SuppressFinalize(this);
    }

    /// <summary>Starts the thread; the derived constructor's last statement.</summary>
    protected void Start() => _thread.Start();

    /// <summary>Waits (holding nothing) until there may be work; false to go round again without a step.</summary>
    protected abstract bool WaitForWork();

    /// <summary>One step, under the step lock; returns the work it did (pages), 0 for none.</summary>
    protected abstract long StepLocked();

    /// <summary>After a step, outside the step lock: counts <paramref name="work"/> and paces the next step.</summary>
    protected abstract void AfterStep(long work);

    /// <summary>Sleeps up to <paramref name="milliseconds"/>, waking at once when the daemon is being disposed.</summary>
    protected void Sleep(int milliseconds) => _stop.Wait(milliseconds);

    private void Loop()
    {
        try
        {
            while (!_stop.IsSet)
            {
                if (!WaitForWork() || _stop.IsSet)
                {
                    continue;
                }

                long work;
                lock (_stepLock)
                {
                    work = _stop.IsSet ? 0 : StepLocked();
                }

                AfterStep(work);
            }
        }
        catch (Exception exception)
        {
            Failure = exception;
            _onFailure?.Invoke(exception);
        }
    }
}
