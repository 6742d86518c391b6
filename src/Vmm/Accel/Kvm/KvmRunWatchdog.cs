namespace Hypervisor.Vmm.Accel.Kvm;

/// <summary>
/// Stops one <see cref="KvmMachine.Run"/> from another thread: sets kvm_run.immediate_exit, so a KVM_RUN not yet
/// entered returns EINTR at once, then sends <see cref="KvmKickSignal"/> to the vCPU thread, so one already in the
/// guest returns EINTR. The first reason fired wins. Signals are sent only while the run is armed (under a lock that
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
    private int _reason = -1;

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

    /// <summary>The reason fired, or null while the run may continue.</summary>
    public KvmStopKind? Reason
    {
        get
        {
            var reason = Volatile.Read(ref _reason);
            return reason < 0 ? null : (KvmStopKind)reason;
        }
    }

    /// <summary>Asks the run to stop for <paramref name="reason"/>; later calls change nothing.</summary>
    /// <param name="reason"><see cref="KvmStopKind.Timeout"/> or <see cref="KvmStopKind.Cancelled"/>.</param>
    public void Fire(KvmStopKind reason)
    {
        if (Interlocked.CompareExchange(ref _reason, (int)reason, -1) != -1)
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
