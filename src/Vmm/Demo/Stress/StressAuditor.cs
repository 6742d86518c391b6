using System.Diagnostics;
using System.Globalization;
using Hypervisor.GuestMmu.Mmu;
using Hypervisor.HostMm;
using Hypervisor.Vmm.Machine;

namespace Hypervisor.Vmm.Demo.Stress;

/// <summary>
/// The stress run's continuous audit: on a thread of its own, pass after pass, it stops every host operation — the
/// demo's mechanisms (the <see cref="HostOperationGate"/>, exclusively), the host's daemons (kswapd, ksmd: paused
/// between two steps) and the vCPUs (each between two slices, its slice gate taken) — and runs the host MM auditor, then
/// the MMU auditor, which walks the EPT under the MMU write lock. The host auditor reads without locks, so it needs the
/// stop; the MMU auditor would not (a host PTE loses a frame or permission only after a notifier start, which zaps under
/// that lock), but running both at one point makes each pass one consistent picture.
/// </summary>
/// <remarks>Lock order: as <see cref="HostOperationGate"/>. The vCPUs' memory-fault handler runs outside the slice gate,
/// so a vCPU waiting out a read-only window never holds up a pass.</remarks>
internal sealed class StressAuditor : IDisposable
{
    private readonly Vm _vm;
    private readonly HostOperationGate _gate;
    private readonly StressGuestMemory _memory;
    private readonly TimeSpan _interval;
    private readonly int _keep;
    private readonly List<string> _violations = [];
    private readonly ManualResetEventSlim _stop = new();
    private readonly Lock _lock = new();
    private Thread? _thread;
    private long _passes;
    private long _violationCount;
    private long _longestPauseTicks;

    /// <summary>Creates the auditor of <paramref name="vm"/>; <see cref="Start"/> starts its thread.</summary>
    public StressAuditor(Vm vm, HostOperationGate gate, StressGuestMemory memory, TimeSpan interval, int keep)
    {
        _vm = vm;
        _gate = gate;
        _memory = memory;
        _interval = interval;
        _keep = keep;
    }

    /// <summary>Passes run so far.</summary>
    public long Passes => Interlocked.Read(ref _passes);

    /// <summary>Violations found so far (all of them, also those not kept).</summary>
    public long ViolationCount => Interlocked.Read(ref _violationCount);

    /// <summary>The longest a pass held everything stopped.</summary>
    public TimeSpan LongestPause => Stopwatch.GetElapsedTime(0, Interlocked.Read(ref _longestPauseTicks));

    /// <summary>What the thread failed with, if it did.</summary>
    public Exception? Failure { get; private set; }

    /// <summary>The first violations found.</summary>
    public IReadOnlyList<string> Violations
    {
        get
        {
            lock (_lock)
            {
                return [.. _violations];
            }
        }
    }

    /// <summary>Starts the audit thread (a track of <paramref name="trace"/>, if any).</summary>
    public void Start(Tracing.TraceRecorder? trace)
    {
        _thread = new Thread(() =>
        {
            trace?.NameCurrentThread("stress-auditor");
            Loop();
        })
        { IsBackground = true, Name = "stress-auditor" };
        _thread.Start();
    }

    /// <summary>Stops the thread after its pass in progress.</summary>
    public void Stop()
    {
        _stop.Set();
        _thread?.Join();
        _thread = null;
    }

    /// <summary>Runs one pass now (from any thread but a vCPU's), labelled <paramref name="when"/>.</summary>
    public void AuditNow(string when) => _gate.Exclusive(() => Pass(when));

    /// <inheritdoc />
    public void Dispose()
    {
        Stop();
        _stop.Dispose();
    }

    private void Loop()
    {
        try
        {
            while (!_stop.Wait(_interval))
            {
                AuditNow(string.Create(CultureInfo.InvariantCulture, $"pass {Passes + 1}"));
            }
        }
        catch (Exception exception)
        {
            Failure = exception;
        }
    }

    /// <summary>One pass; the caller holds the gate exclusively.</summary>
    private void Pass(string when)
    {
        var kswapd = _vm.ReclaimDaemon;
        var ksmd = _vm.Machine?.KsmDaemon;
        kswapd?.Pause();
        try
        {
            ksmd?.Pause();
            try
            {
                _memory.WithVcpusPaused(() =>
                {
                    var started = Stopwatch.GetTimestamp();
                    if (_vm.Process is { HasExited: false })
                    {
                        Record(when, "host", HostMmAuditor.Check(_vm.Host!));
                        Record(when, "MMU", MmuAuditor.Check(_vm.Mmu!));
                    }

                    Interlocked.Increment(ref _passes);
                    var ticks = Stopwatch.GetTimestamp() - started;
                    if (ticks > Interlocked.Read(ref _longestPauseTicks))
                    {
                        Interlocked.Exchange(ref _longestPauseTicks, ticks);
                    }
                });
            }
            finally
            {
                ksmd?.Resume();
            }
        }
        finally
        {
            kswapd?.Resume();
        }
    }

    private void Record(string when, string what, IReadOnlyList<string> found)
    {
        if (found.Count == 0)
        {
            return;
        }

        Interlocked.Add(ref _violationCount, found.Count);
        lock (_lock)
        {
            foreach (var violation in found)
            {
                if (_violations.Count < _keep)
                {
                    _violations.Add($"{when}, {what}: {violation}");
                }
            }
        }
    }
}
