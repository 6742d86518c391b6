using System.Diagnostics;

namespace Hypervisor.GuestMmu.Tlb;

/// <summary>
/// Remote TLB flushes for one VM (KVM's <c>kvm_flush_remote_tlbs</c>): <see cref="FlushAll"/> posts a flush
/// request to every vCPU and waits until each vCPU that was running guest code has acknowledged it at an
/// instruction-block boundary (or left guest mode, which services the request first). vCPUs outside the
/// guest flush before they next enter. Thread-safe; ports may be added and removed at any time.
/// </summary>
public sealed class TlbShootdown
{
    private readonly Lock _lock = new();
    private VcpuTlbPort[] _ports = [];
    private long _flushes;
    private long _waits;
    private long _waitTicks;
    private long _maxWaitTicks;

    /// <summary>The registered vCPU ports (a snapshot).</summary>
    public IReadOnlyList<VcpuTlbPort> Ports => Volatile.Read(ref _ports);

    /// <summary>Remote flushes issued.</summary>
    public long Flushes => Volatile.Read(ref _flushes);

    /// <summary>Flushes that had to wait for at least one vCPU in guest mode.</summary>
    public long Waits => Volatile.Read(ref _waits);

    /// <summary>
    /// Time spent in those waits, from the requests being posted to the last acknowledgement (KVM's shootdown latency),
    /// summed over <see cref="Waits"/>: divide for the mean.
    /// </summary>
    public TimeSpan WaitTime => Stopwatch.GetElapsedTime(0, Volatile.Read(ref _waitTicks));

    /// <summary>The longest single wait.</summary>
    public TimeSpan MaxWait => Stopwatch.GetElapsedTime(0, Volatile.Read(ref _maxWaitTicks));

    /// <summary>Adds a vCPU.</summary>
    public void Add(VcpuTlbPort port)
    {
        ArgumentNullException.ThrowIfNull(port);
        lock (_lock)
        {
            if (Array.IndexOf(_ports, port) >= 0)
            {
                throw new ArgumentException($"vCPU {port.VcpuId} is already registered for TLB shootdowns", nameof(port));
            }

            Volatile.Write(ref _ports, [.. _ports, port]);
        }
    }

    /// <summary>Removes a vCPU (it must be outside guest mode for good).</summary>
    public void Remove(VcpuTlbPort port)
    {
        lock (_lock)
        {
            Volatile.Write(ref _ports, [.. _ports.Where(p => p != port)]);
        }
    }

    /// <summary>
    /// Flushes every vCPU's TLB. Returns when no vCPU can still use a translation made before the call.
    /// Must not be called from a vCPU thread that is in guest mode (it would wait for itself).
    /// </summary>
    public void FlushAll()
    {
        Interlocked.Increment(ref _flushes);
        var ports = Volatile.Read(ref _ports);
        Span<long> waitFor = ports.Length <= 64 ? stackalloc long[ports.Length] : new long[ports.Length];
        var anyWait = false;
        for (var i = 0; i < ports.Length; i++)
        {
            waitFor[i] = ports[i].Post();
            anyWait |= waitFor[i] >= 0;
        }

        if (!anyWait)
        {
            return;
        }

        Interlocked.Increment(ref _waits);
        var started = Stopwatch.GetTimestamp();
        for (var i = 0; i < ports.Length; i++)
        {
            if (waitFor[i] < 0)
            {
                continue;
            }

            var port = ports[i];
            var spinner = default(SpinWait);
            while (port.Served < waitFor[i] && port.Mode == VcpuMode.InGuest)
            {
                spinner.SpinOnce(sleep1Threshold: 64);
            }
        }

        var waited = Stopwatch.GetTimestamp() - started;
        Interlocked.Add(ref _waitTicks, waited);
        var max = Volatile.Read(ref _maxWaitTicks);
        while (waited > max && Interlocked.CompareExchange(ref _maxWaitTicks, waited, max) is var seen && seen != max)
        {
            max = seen;
        }
    }
}
