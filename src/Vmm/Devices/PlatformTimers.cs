namespace Hypervisor.Vmm.Devices;

/// <summary>
/// The platform's timer devices as the boot vCPU sees them: the earliest deadline of all, and one call that fires
/// every device whose deadline has come. A device the guest reprograms calls <see cref="Changed"/>, which bumps
/// <see cref="Generation"/> and runs <see cref="Kick"/> (the boot vCPU's "look again" hook).
/// </summary>
/// <remarks>
/// <para>Time is the platform clock (<see cref="Clock"/>, in nanoseconds of virtual time on the interpreter: the
/// boot vCPU's retired instructions plus the time it skipped in HLT).</para>
/// <para>Thread-safe. The timers are registered before the VM runs; a reader that sees the same <see cref="Generation"/>
/// before and after computing a deadline missed no change.</para>
/// </remarks>
public sealed class PlatformTimers
{
    private readonly Lock _lock = new();
    private IPlatformTimer[] _timers = [];
    private long _generation;

    /// <summary>
    /// The platform clock in nanoseconds. Starts as a host monotonic clock (what the kvm accelerator, which has no
    /// virtual clock of its own, uses); the interpreter replaces it with the boot vCPU's virtual time before it runs.
    /// </summary>
    public Func<long> Clock { get; set; } = HostClock;

    /// <summary>Called after every <see cref="Changed"/> (the boot vCPU sets it to re-check its next event); null for none.</summary>
    public Action? Kick { get; set; }

    /// <summary>Incremented before every <see cref="Kick"/>.</summary>
    public long Generation => Volatile.Read(ref _generation);

    /// <summary>The registered timers.</summary>
    public IReadOnlyList<IPlatformTimer> Timers => Volatile.Read(ref _timers);

    /// <summary>The platform clock now.</summary>
    public long Now => Clock();

    /// <summary>A host monotonic clock in nanoseconds (Stopwatch-based).</summary>
    /// <returns>Nanoseconds since an arbitrary host epoch.</returns>
    public static long HostClock() => (long)(System.Diagnostics.Stopwatch.GetTimestamp() * (1e9 / System.Diagnostics.Stopwatch.Frequency));

    /// <summary>Adds <paramref name="timer"/> (before the VM runs).</summary>
    /// <param name="timer">The device.</param>
    public void Register(IPlatformTimer timer)
    {
        ArgumentNullException.ThrowIfNull(timer);
        lock (_lock)
        {
            _timers = [.. _timers, timer];
        }

        Changed();
    }

    /// <summary>A device's deadline moved (the guest reprogrammed it): the boot vCPU must look again.</summary>
    public void Changed()
    {
        Interlocked.Increment(ref _generation);
        Kick?.Invoke();
    }

    /// <summary>Fires every timer due at <paramref name="now"/> and returns the earliest deadline left (<see cref="long.MaxValue"/>: none).</summary>
    /// <param name="now">The platform clock now.</param>
    /// <returns>The next deadline of any timer.</returns>
    public long Service(long now)
    {
        var next = long.MaxValue;
        foreach (var timer in Timers)
        {
            var deadline = timer.NextDeadline(now);
            if (deadline <= now)
            {
                timer.Fire(now);
                deadline = timer.NextDeadline(now);
            }

            next = Math.Min(next, deadline);
        }

        return next;
    }

    /// <summary>The earliest deadline of a timer that can interrupt a CPU (<see cref="IPlatformTimer.CanInterrupt"/>), or <see cref="long.MaxValue"/>.</summary>
    /// <param name="now">The platform clock now.</param>
    /// <returns>When a halted CPU with interrupts enabled could next be woken by a platform timer.</returns>
    public long NextWake(long now)
    {
        var next = long.MaxValue;
        foreach (var timer in Timers)
        {
            if (timer.CanInterrupt)
            {
                next = Math.Min(next, timer.NextDeadline(now));
            }
        }

        return next;
    }
}
