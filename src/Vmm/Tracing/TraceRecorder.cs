using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;

namespace Hypervisor.Vmm.Tracing;

/// <summary>
/// One run's timeline (<c>hv run --trace FILE</c>): a <see cref="TraceRing"/> of events plus the names of the
/// trace's processes (<see cref="HostPid"/> for the host's daemons, <see cref="VmPid"/> for each VM) and threads, which
/// <see cref="ChromeTraceWriter"/> writes as a Chrome trace-event file. Recording is thread-safe and allocates nothing
/// per event once a thread is known.
/// </summary>
public sealed class TraceRecorder
{
    /// <summary>The default ring size, in events (its memory is allocated as it fills, <see cref="TraceRing.DefaultChunkSize"/> events at a time).</summary>
    public const int DefaultCapacity = 1_000_000;

    /// <summary>The largest ring size accepted (80 bytes an event once used: 1.6 GB when full).</summary>
    public const int MaxCapacity = 20_000_000;

    /// <summary>The smallest ring size accepted.</summary>
    public const int MinCapacity = 16;

    /// <summary>The trace process of the host: its daemons and host-wide counters.</summary>
    public const int HostPid = 1;

    // The id of the recorder that already knows the calling thread's name (an id, not a reference, so that a thread
    // does not keep a finished run's ring alive).
    [ThreadStatic]
    private static long t_knownTo;

    private static long s_lastId;

    private readonly long _id = Interlocked.Increment(ref s_lastId);

    private readonly TraceRing _ring;
    private readonly ConcurrentDictionary<int, string> _threadNames = new();
    private readonly ConcurrentDictionary<int, string> _processNames = new();

    /// <summary>Creates a recorder whose ring holds <paramref name="capacity"/> events; its clock starts now.</summary>
    public TraceRecorder(int capacity = DefaultCapacity)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, MinCapacity);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(capacity, MaxCapacity);
        _ring = new TraceRing(capacity);
        Origin = Stopwatch.GetTimestamp();
        _processNames[HostPid] = "host";
    }

    /// <summary>The <see cref="Stopwatch"/> timestamp that is time 0 in the file.</summary>
    public long Origin { get; }

    /// <summary>The ring's size in events.</summary>
    public int Capacity => _ring.Capacity;

    /// <summary>Event slots allocated so far (the ring grows a chunk at a time up to <see cref="Capacity"/>).</summary>
    public long AllocatedEvents => _ring.AllocatedSlots;

    /// <summary>The names given to trace processes, by pid.</summary>
    public IReadOnlyDictionary<int, string> ProcessNames => _processNames;

    /// <summary>The names of the threads that recorded, by managed thread id.</summary>
    public IReadOnlyDictionary<int, string> ThreadNames => _threadNames;

    /// <summary>The trace pid of VM <paramref name="index"/> (0-based).</summary>
    public static int VmPid(int index) => HostPid + 1 + index;

    /// <summary>Names the trace process <paramref name="pid"/>.</summary>
    public void NameProcess(int pid, string name) => _processNames[pid] = name;

    /// <summary>Names the calling thread's track (e.g. <c>vcpu0</c> for the thread that runs the boot vCPU).</summary>
    public void NameCurrentThread(string name)
    {
        _threadNames[Environment.CurrentManagedThreadId] = name;
        t_knownTo = _id;
    }

    /// <summary>Records a span of <paramref name="type"/> on the calling thread from <paramref name="startTimestamp"/> until now.</summary>
    public void Complete(TraceEventType type, int pid, long startTimestamp, long arg0 = 0, long arg1 = 0, long arg2 = 0, string? text0 = null, string? text1 = null)
    {
        var now = Stopwatch.GetTimestamp();
        Record(type, pid, startTimestamp, Math.Max(0, now - startTimestamp), arg0, arg1, arg2, text0, text1);
    }

    /// <summary>Records an instant (or a counter sample) of <paramref name="type"/> on the calling thread, now.</summary>
    public void Instant(TraceEventType type, int pid, long arg0 = 0, long arg1 = 0, long arg2 = 0, string? text0 = null, string? text1 = null) =>
        Record(type, pid, Stopwatch.GetTimestamp(), 0, arg0, arg1, arg2, text0, text1);

    /// <summary>The events recorded so far (see <see cref="TraceRing.Snapshot"/>).</summary>
    public TraceSnapshot Snapshot() => _ring.Snapshot();

    private void Record(TraceEventType type, int pid, long timestamp, long duration, long arg0, long arg1, long arg2, string? text0, string? text1)
    {
        var tid = Environment.CurrentManagedThreadId;
        if (t_knownTo != _id)
        {
            _threadNames.TryAdd(tid, Thread.CurrentThread.Name ?? string.Create(CultureInfo.InvariantCulture, $"thread {tid}"));
            t_knownTo = _id;
        }

        _ring.Record(new TraceEvent
        {
            Type = type,
            Timestamp = timestamp,
            Duration = duration,
            Pid = pid,
            Tid = tid,
            Arg0 = arg0,
            Arg1 = arg1,
            Arg2 = arg2,
            Text0 = text0,
            Text1 = text1,
        });
    }
}
