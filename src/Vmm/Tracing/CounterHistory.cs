using System.Diagnostics;
using System.Globalization;
using Hypervisor.Vmm.Machine;

namespace Hypervisor.Vmm.Tracing;

/// <summary>
/// A bounded history of every VM's counters over a command's run, for the charts of <c>--report</c> and the series of
/// <c>--json</c>; it needs no <c>--trace</c>. A thread (<c>counter-history</c>) samples each attached VM every
/// <see cref="Interval"/>: its resident, swapped and KSM-merged pages, present sptes, EPT violations and zapped sptes.
/// </summary>
/// <remarks>
/// <para>VMs join through the ambient <see cref="Current"/>: an emulated <see cref="Vm"/> built while a history is current
/// (on its thread, or on a thread started from it: the ambient flows with the execution context, as into a demo's
/// worker) attaches itself with a first sample, and detaches with a last one when it is disposed, before its MMU and
/// process are torn down. So demos that build their own VMs are charted without knowing it.</para>
/// <para>Memory is bounded: at most <see cref="MaxVms"/> VMs (later ones are counted in <see cref="UntrackedVms"/>), each
/// with at most <see cref="Capacity"/> samples (<see cref="CounterTrack"/> thins a full track).</para>
/// <para>Lock order: the history's lock is taken before any host or MMU lock a sample takes, and never under one.</para>
/// </remarks>
public sealed class CounterHistory : IDisposable
{
    /// <summary>The default time between samples.</summary>
    public static readonly TimeSpan DefaultInterval = TimeSpan.FromMilliseconds(10);

    /// <summary>Samples kept per VM.</summary>
    public const int Capacity = 2048;

    /// <summary>VMs tracked; later ones are only counted.</summary>
    public const int MaxVms = 64;

    private static readonly AsyncLocal<CounterHistory?> Ambient = new();

    private readonly Lock _lock = new();
    private readonly List<CounterTrack> _tracks = [];
    private readonly Dictionary<Vm, CounterTrack> _live = [];
    private readonly Dictionary<Vm, int> _ids = [];
    private readonly long _start = Stopwatch.GetTimestamp();
    private readonly ManualResetEventSlim _stop = new();
    private readonly Thread _thread;
    private bool _disposed;

    /// <summary>Starts the sampling thread.</summary>
    /// <param name="interval">The time between samples (default <see cref="DefaultInterval"/>).</param>
    public CounterHistory(TimeSpan? interval = null)
    {
        Interval = interval ?? DefaultInterval;
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(Interval, TimeSpan.Zero, nameof(interval));
        _thread = new Thread(Loop) { IsBackground = true, Name = "counter-history" };
        _thread.Start();
    }

    /// <summary>The history VMs built in this execution context attach to; null when none is current.</summary>
    public static CounterHistory? Current => Ambient.Value;

    /// <summary>The time between samples.</summary>
    public TimeSpan Interval { get; }

    /// <summary>VMs built after <see cref="MaxVms"/> were tracked: not charted.</summary>
    public int UntrackedVms { get; private set; }

    /// <summary>Makes this history <see cref="Current"/> until the returned scope is disposed (which restores the previous one).</summary>
    public IDisposable MakeCurrent()
    {
        var previous = Ambient.Value;
        Ambient.Value = this;
        return new Scope(previous);
    }

    /// <summary>Tracks <paramref name="vm"/> (an emulated VM) and takes its first sample.</summary>
    public void Attach(Vm vm)
    {
        ArgumentNullException.ThrowIfNull(vm);
        lock (_lock)
        {
            if (_disposed || _live.ContainsKey(vm))
            {
                return;
            }

            if (_tracks.Count >= MaxVms)
            {
                UntrackedVms++;
                return;
            }

            var track = new CounterTrack(_tracks.Count, Describe(_tracks.Count, vm), Capacity);
            _tracks.Add(track);
            _live.Add(vm, track);
            _ids.Add(vm, track.Id);
            if (Take(vm, track) is { } first)
            {
                track.Add(first);
            }
        }
    }

    /// <summary>Takes <paramref name="vm"/>'s last sample and stops tracking it; call before its MMU and process are torn down.</summary>
    public void Detach(Vm vm)
    {
        ArgumentNullException.ThrowIfNull(vm);
        lock (_lock)
        {
            if (_live.Remove(vm, out var track) && Take(vm, track) is { } last)
            {
                track.Add(last);
            }
        }
    }

    /// <summary>Names <paramref name="vm"/>'s series (e.g. by its image) instead of its options.</summary>
    public void Name(Vm vm, string label)
    {
        ArgumentNullException.ThrowIfNull(vm);
        ArgumentException.ThrowIfNullOrEmpty(label);
        lock (_lock)
        {
            if (_live.TryGetValue(vm, out var track))
            {
                track.Label = label;
            }
        }
    }

    /// <summary>
    /// Adds a figure of <paramref name="vm"/>'s own to its samples, read by <paramref name="read"/> on the sampling thread
    /// (e.g. how much of a demo's hot set is resident): <paramref name="read"/> must tolerate the VM running beside it,
    /// and is not called after the VM detaches.
    /// </summary>
    public void Watch(Vm vm, string name, Func<long> read)
    {
        ArgumentNullException.ThrowIfNull(vm);
        ArgumentException.ThrowIfNullOrEmpty(name);
        ArgumentNullException.ThrowIfNull(read);
        lock (_lock)
        {
            if (_live.TryGetValue(vm, out var track))
            {
                track.Watch(name, read);
            }
        }
    }

    /// <summary>The number of <paramref name="vm"/>'s series (<see cref="CounterSeries.Id"/>); null when it was not tracked.</summary>
    public int? IdOf(Vm vm)
    {
        lock (_lock)
        {
            return _ids.TryGetValue(vm, out var id) ? id : null;
        }
    }

    /// <summary>Every tracked VM's samples so far, in the order the VMs were built.</summary>
    public IReadOnlyList<CounterSeries> Snapshot()
    {
        lock (_lock)
        {
            return _tracks.Select(t => new CounterSeries(t.Id, t.Label, Interval * t.Stride, t.ToArray(), t.WatchedName)).ToList();
        }
    }

    /// <summary>Takes the last sample of the VMs still attached and stops the thread.</summary>
    public void Dispose()
    {
        lock (_lock)
        {
            if (_disposed)
            {
                return;
            }

            _disposed = true;
        }

        _stop.Set();
        _thread.Join();
        lock (_lock)
        {
            foreach (var (vm, track) in _live)
            {
                if (Take(vm, track) is { } last)
                {
                    track.Add(last);
                }
            }

            _live.Clear();
        }

        _stop.Dispose();
    }

    private void Loop()
    {
        while (!_stop.Wait(Interval))
        {
            lock (_lock)
            {
                foreach (var (vm, track) in _live)
                {
                    if (Take(vm, track) is { } sample)
                    {
                        track.Tick(sample);
                    }
                }
            }
        }
    }

    private CounterSample? Take(Vm vm, CounterTrack track)
    {
        if (vm.Process is not { HasExited: false } process || vm.Mmu is not { } mmu)
        {
            return null;
        }

        var stats = process.Stats;
        var merged = vm.Options.Ksm && vm.Host is { } host ? host.Ksm.ProcessStats(process).MergingPages : 0;
        return new CounterSample(
            Stopwatch.GetElapsedTime(_start).TotalMilliseconds,
            stats.RssPages,
            stats.SwapEntries,
            merged,
            mmu.Ept.PresentLeaves,
            mmu.FaultCount,
            mmu.ZappedCount,
            track.Watched?.Invoke() ?? -1);
    }

    // "VM 2: 64 MiB, host-mem 16 MiB, secondary aging off, cmdline "mib=48"": enough to tell a demo's phases apart.
    private static string Describe(int id, Vm vm)
    {
        var o = vm.Options;
        var c = CultureInfo.InvariantCulture;
        var parts = new List<string> { string.Create(c, $"{o.MemoryBytes >> 20} MiB") };
        if (o.HostMemoryBytes is { } limit)
        {
            parts.Add(string.Create(c, $"host-mem {limit >> 20} MiB"));
            parts.Add(o.SecondaryAging ? "secondary aging on" : "secondary aging off");
        }

        if (o.Ksm)
        {
            parts.Add("ksm");
        }

        if (o.TransparentHugePages != HostMm.ThpMode.Never)
        {
            parts.Add($"thp {o.TransparentHugePages.ToString().ToLowerInvariant()}");
        }

        if (o.NumaNodes is { } nodes)
        {
            parts.Add(string.Create(c, $"{nodes} NUMA nodes"));
        }

        if (o.CommandLine.Length is > 0 and <= 60)
        {
            parts.Add($"cmdline \"{o.CommandLine}\"");
        }

        return string.Create(c, $"VM {id}: {string.Join(", ", parts)}");
    }

    private sealed class Scope(CounterHistory? previous) : IDisposable
    {
        public void Dispose() => Ambient.Value = previous;
    }
}
