namespace Hypervisor.Vmm.Accel.Emulated;

/// <summary>
/// Knows which of a VM's interpreter vCPUs are asleep — halted with nothing of their own that can wake them, or an
/// application processor still waiting for its start-up IPI — so that a halted vCPU blocks until another vCPU's IPI
/// (or a start-up) wakes it, and the VM stops as halted only when every vCPU is asleep: then nothing can ever wake any.
/// </summary>
/// <remarks>
/// <para>Ordering: a wake is counted on the waker's thread, under the coordinator's lock, before the sleeper runs again
/// (<see cref="Kick"/>): so a vCPU that sends an IPI and then halts never sees "every vCPU asleep" while the target of
/// that IPI has yet to notice it. A woken vCPU that finds nothing it can take (an interrupt held off by IF) calls
/// <see cref="Sleep"/> again, and that call may be the one that finds every vCPU asleep.</para>
/// <para>Lock order: the APIC's lock, then this one (<see cref="Kick"/> runs inside the APIC's kick).</para>
/// </remarks>
public sealed class HaltCoordinator
{
    private readonly Lock _lock = new();
    private readonly bool[] _asleep;
    private readonly SemaphoreSlim[] _wakeups;
    private int _awake;

    /// <summary>Creates the coordinator of <paramref name="cpuCount"/> vCPUs; <paramref name="running"/> says which start awake.</summary>
    /// <param name="cpuCount">vCPUs in the VM.</param>
    /// <param name="running">True for a vCPU that runs from the start (the boot vCPU); the others start asleep.</param>
    public HaltCoordinator(int cpuCount, Func<int, bool> running)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(cpuCount, 1);
        ArgumentNullException.ThrowIfNull(running);
        _asleep = new bool[cpuCount];
        _wakeups = new SemaphoreSlim[cpuCount];
        for (var id = 0; id < cpuCount; id++)
        {
            _wakeups[id] = new SemaphoreSlim(0);
            _asleep[id] = !running(id);
            _awake += _asleep[id] ? 0 : 1;
        }
    }

    /// <summary>vCPUs not asleep now.</summary>
    public int Awake
    {
        get
        {
            lock (_lock)
            {
                return _awake;
            }
        }
    }

    /// <summary>Times a vCPU went to sleep.</summary>
    public long Sleeps { get; private set; }

    /// <summary>Times a sleeping vCPU was woken by another vCPU or a device.</summary>
    public long Wakeups { get; private set; }

    /// <summary>
    /// vCPU <paramref name="id"/>'s thread: it has nothing it can run. Returns false when it was the last one awake
    /// (every vCPU is now asleep and the VM is halted); else true, and the caller waits with <see cref="Wait(int, CancellationToken)"/>.
    /// </summary>
    public bool Sleep(int id)
    {
        lock (_lock)
        {
            if (!_asleep[id])
            {
                _asleep[id] = true;
                _awake--;
                Sleeps++;
            }

            return _awake > 0;
        }
    }

    /// <summary>
    /// Something may have made vCPU <paramref name="id"/> runnable (an interrupt, an NMI, INIT or a start-up IPI): if it
    /// sleeps, it counts as awake from now and its thread is released. Cheap when it is awake.
    /// </summary>
    public void Kick(int id)
    {
        if (!Volatile.Read(ref _asleep[id]))
        {
            return;
        }

        lock (_lock)
        {
            if (!_asleep[id])
            {
                return;
            }

            _asleep[id] = false;
            _awake++;
            Wakeups++;
            _wakeups[id].Release();
        }
    }

    /// <summary>
    /// vCPU <paramref name="id"/>'s thread, after <see cref="Sleep"/> returned true: blocks until a <see cref="Kick"/>
    /// wakes it (true) or <paramref name="stop"/> fires (false; the VM is ending).
    /// </summary>
    public bool Wait(int id, CancellationToken stop)
    {
        try
        {
            _wakeups[id].Wait(stop);
            return true;
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }

    /// <summary>
    /// Waits up to <paramref name="timeout"/> for a wake-up of vCPU <paramref name="id"/>: true when woken, false when the
    /// time ran out (the vCPU is still counted asleep) or <paramref name="stop"/> fired (check it).
    /// </summary>
    /// <param name="id">The vCPU.</param>
    /// <param name="timeout">How long to wait.</param>
    /// <param name="stop">The VM's end.</param>
    public bool Wait(int id, TimeSpan timeout, CancellationToken stop)
    {
        try
        {
            return _wakeups[id].Wait(timeout, stop);
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }

    /// <summary>
    /// Counts vCPU <paramref name="id"/> awake again on its own account (its timer came due while it slept), without a
    /// wake-up permit: unlike <see cref="Kick"/>, its next <see cref="Wait(int, CancellationToken)"/> still blocks.
    /// </summary>
    /// <param name="id">The vCPU, on its own thread.</param>
    public void WakeSelf(int id)
    {
        lock (_lock)
        {
            if (!_asleep[id])
            {
                return;
            }

            _asleep[id] = false;
            _awake++;
            Wakeups++;
        }
    }

    /// <summary>The vCPUs counted awake now, other than <paramref name="id"/> (a snapshot).</summary>
    /// <param name="id">The vCPU asking.</param>
    public IEnumerable<int> AwakeOthers(int id)
    {
        lock (_lock)
        {
            var awake = new List<int>(_asleep.Length);
            for (var other = 0; other < _asleep.Length; other++)
            {
                if (other != id && !_asleep[other])
                {
                    awake.Add(other);
                }
            }

            return awake;
        }
    }

    /// <summary>Whether vCPU <paramref name="id"/> is asleep now.</summary>
    public bool IsAsleep(int id)
    {
        lock (_lock)
        {
            return _asleep[id];
        }
    }
}
