namespace Hypervisor.Vmm.Accel.Kvm;

/// <summary>
/// Stops one <see cref="KvmMachine.Run"/> from another thread: sets kvm_run.immediate_exit, so a KVM_RUN not yet
/// entered returns EINTR at once, then sends <see cref="KvmKickSignal"/> to the vCPU thread, so one already in the
/// guest returns EINTR. Firing twice changes nothing. Signals are sent only while the run is armed (under a lock that
/// <see cref="Disarm"/> also takes), so no kick reaches the thread after the run has ended.
/// </summary>
// unsafe: immediate_exit is written through the pointer to the mapped kvm_run page.
internal sealed unsafe class KvmRunWatchdog
{
    private readonly object _gate = new();
    private readonly KvmRunHeader* _run;
    private readonly nuint _thread;
    private readonly int _signal;
    private bool _armed = true;
    private int _fired;

    /// <summary>Creates a watchdog for the vCPU whose kvm_run is <paramref name="run"/>, running on <paramref name="thread"/>.</summary>
    /// <param name="run">The vCPU's mapped kvm_run.</param>
    /// <param name="thread">The pthread that calls KVM_RUN.</param>
    /// <param name="signal">The kick signal.</param>
    public KvmRunWatchdog(KvmRunHeader* run, nuint thread, int signal)
    {
        _run = run;
        _thread = thread;
        _signal = signal;
    }

    /// <summary>True once the run was asked to stop.</summary>
    public bool Fired => Volatile.Read(ref _fired) != 0;

    /// <summary>Asks the run to stop; later calls change nothing.</summary>
    public void Fire()
    {
        if (Interlocked.Exchange(ref _fired, 1) != 0)
        {
            return;
        }

        lock (_gate)
        {
            if (!_armed)
            {
                return;
            }

            Volatile.Write(ref _run->ImmediateExit, 1);
            _ = KvmNative.PthreadKill(_thread, _signal);
        }
    }

    /// <summary>Ends the run's window: no kick is sent after this returns.</summary>
    public void Disarm()
    {
        lock (_gate)
        {
            _armed = false;
        }
    }
}
