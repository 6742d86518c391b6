using System.Collections.Concurrent;
using Hypervisor.HostMm.Frames;

namespace Hypervisor.HostMm;

/// <summary>
/// A simulated host: its RAM (<see cref="HostMemory"/>), the shared zero page, and the processes
/// (<see cref="Mm"/>) whose memory it manages. Daemons (reclaim, KSM, migration) attach here as they arrive.
/// </summary>
public sealed class Host : IDisposable, IFrameObserver
{
    private readonly ConcurrentDictionary<int, Mm> _mms = new();
    private int _nextMmId;
    private volatile IHostTrace? _trace;
    private bool _disposed;

    /// <summary>Builds the host: allocates its RAM arena and the zero page.</summary>
    public Host(HostOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        Options = options;
        Memory = new HostMemory(options.Memory);
        ZeroPfn = Memory.Allocate(0, AllocationFlags.Zero);
        // Reserved: the zero page is never freed, and is never counted as a mapping (Linux's special PTE).
        Memory.SetFlags(ZeroPfn, FrameFlags.Reserved);
        Memory.Observer = this;
    }

    /// <summary>The options the host was built with.</summary>
    public HostOptions Options { get; }

    /// <summary>Host RAM.</summary>
    public HostMemory Memory { get; }

    /// <summary>The shared zero page: read faults on never-written anonymous memory map it read-only.</summary>
    public Pfn ZeroPfn { get; }

    /// <summary>Where host steps (PTE changes, TLB flushes, frame frees) are reported; null for none.</summary>
    public IHostTrace? Trace
    {
        get => _trace;
        set => _trace = value;
    }

    /// <summary>The live processes.</summary>
    public IReadOnlyCollection<Mm> Mms => [.. _mms.Values.OrderBy(mm => mm.Id)];

    /// <summary>Creates an empty process whose page tables and first-touch frames prefer <paramref name="preferredNode"/>.</summary>
    public Mm CreateMm(int preferredNode = 0)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (preferredNode < 0 || preferredNode >= Memory.NodeCount)
        {
            throw new ArgumentOutOfRangeException(nameof(preferredNode), preferredNode,
                $"preferred node must be in [0, {Memory.NodeCount}): the host has {Memory.NodeCount} NUMA nodes");
        }

        var mm = new Mm(this, Interlocked.Increment(ref _nextMmId), preferredNode);
        _mms[mm.Id] = mm;
        return mm;
    }

    /// <summary>A snapshot of host-wide counters.</summary>
    public HostStats Stats => new()
    {
        Memory = Memory.GetStats(),
        Processes = _mms.Count,
        RssPages = _mms.Values.Sum(mm => mm.Stats.RssPages),
    };

    /// <summary>Frees host RAM. Every process must have exited.</summary>
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        Memory.Dispose();
    }

    /// <inheritdoc />
    void IFrameObserver.OnFrameFreed(Pfn pfn) => _trace?.FrameFreed(pfn);

    /// <summary>Called by <see cref="Mm.Exit"/> once the process is gone.</summary>
    internal void Forget(Mm mm) => _mms.TryRemove(mm.Id, out _);
}
