using Hypervisor.HostMm;
using Hypervisor.Vmm.Machine;

namespace Hypervisor.Vmm.Tracing;

/// <summary>
/// A thread (<c>trace-sampler</c>) that samples counter tracks into a <see cref="TraceRecorder"/> every
/// <see cref="Interval"/> while VMs run: per VM its process's resident, swapped and KSM-merged pages and its present
/// sptes; for the host, pages swapped in and out. A last sample is taken when it stops.
/// </summary>
public sealed class TraceSampler : IDisposable
{
    /// <summary>The default time between samples.</summary>
    public static readonly TimeSpan DefaultInterval = TimeSpan.FromMilliseconds(10);

    private readonly TraceRecorder _recorder;
    private readonly IReadOnlyList<Vm> _vms;
    private readonly Host? _host;
    private readonly ManualResetEventSlim _stop = new();
    private readonly Thread _thread;
    private bool _disposed;

    /// <summary>Starts sampling <paramref name="vms"/> (all on one host) into <paramref name="recorder"/>.</summary>
    public TraceSampler(TraceRecorder recorder, IReadOnlyList<Vm> vms, TimeSpan? interval = null)
    {
        ArgumentNullException.ThrowIfNull(recorder);
        ArgumentNullException.ThrowIfNull(vms);
        _recorder = recorder;
        _vms = vms;
        _host = vms.Select(v => v.Host).FirstOrDefault(h => h is not null);
        Interval = interval ?? DefaultInterval;
        _thread = new Thread(Loop) { IsBackground = true, Name = "trace-sampler" };
        _thread.Start();
    }

    /// <summary>The time between samples.</summary>
    public TimeSpan Interval { get; }

    /// <summary>Takes the last sample and stops the thread. Call before the VMs' processes exit.</summary>
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
    }

    private void Loop()
    {
        do
        {
            Sample();
        }
        while (!_stop.Wait(Interval));

        Sample();
    }

    private void Sample()
    {
        foreach (var vm in _vms)
        {
            if (vm.Process is not { HasExited: false } process)
            {
                continue;
            }

            var pid = TraceRecorder.VmPid(vm.Index);
            var stats = process.Stats;
            var merged = vm.Options.Ksm && vm.Host is { } host ? host.Ksm.ProcessStats(process).MergingPages : 0;
            _recorder.Instant(TraceEventTypes.MemoryCounter, pid, stats.RssPages, stats.SwapEntries, merged);
            if (vm.Mmu is { } mmu)
            {
                _recorder.Instant(TraceEventTypes.SptesCounter, pid, mmu.Ept.PresentLeaves);
            }
        }

        if (_host is { Reclaim.Area: not null } swapping)
        {
            var reclaim = swapping.Reclaim.Stats;
            _recorder.Instant(TraceEventTypes.SwapCounter, TraceRecorder.HostPid, reclaim.Pswpin, reclaim.Pswpout);
        }
    }
}
