using Hypervisor.HostMm;
using Hypervisor.Vmm.Machine;

namespace Hypervisor.Vmm.Tracing;

/// <summary>
/// A thread (<c>trace-sampler</c>) that samples counter tracks into a <see cref="TraceRecorder"/> every
/// <see cref="Interval"/> while VMs run: per VM its process's resident, swapped and KSM-merged pages, its present
/// sptes and (with THP) its huge leaves; for the host, pages swapped in and out (with swap), KSM's shared and sharing
/// pages (with KSM) and pages migrated and failed (once any was). A last sample is taken when it stops.
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

    /// <summary>Starts sampling <paramref name="vms"/> into <paramref name="recorder"/>; null (nothing to stop) without a recorder.</summary>
    public static TraceSampler? Start(TraceRecorder? recorder, params IReadOnlyList<Vm> vms) =>
        recorder is null ? null : new TraceSampler(recorder, vms);

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

            if (vm.Options.TransparentHugePages != ThpMode.Never)
            {
                _recorder.Instant(TraceEventTypes.ThpCounter, pid, process.ThpStats.HugeLeaves);
            }
        }

        if (_host is null)
        {
            return;
        }

        if (_host.Reclaim.Area is not null)
        {
            var reclaim = _host.Reclaim.Stats;
            _recorder.Instant(TraceEventTypes.SwapCounter, TraceRecorder.HostPid, reclaim.Pswpin, reclaim.Pswpout);
        }

        if (_vms.Any(v => v.Options.Ksm))
        {
            var ksm = _host.Ksm.Stats;
            _recorder.Instant(TraceEventTypes.KsmCounter, TraceRecorder.HostPid, ksm.PagesShared, ksm.PagesSharing);
        }

        var migration = _host.Migration.Stats;
        if (migration.PgmigrateSuccess + migration.PgmigrateFail > 0)
        {
            _recorder.Instant(TraceEventTypes.MigrateCounter, TraceRecorder.HostPid, migration.PgmigrateSuccess, migration.PgmigrateFail);
        }
    }
}
