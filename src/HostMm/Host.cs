using System.Collections.Concurrent;
using Hypervisor.HostMm.Frames;
using Hypervisor.HostMm.Huge;
using Hypervisor.HostMm.Ksm;
using Hypervisor.HostMm.Migration;
using Hypervisor.HostMm.Reclaim;

namespace Hypervisor.HostMm;

/// <summary>
/// A simulated host: its RAM (<see cref="HostMemory"/>), the shared zero page, the processes (<see cref="Mm"/>) whose
/// memory it manages, and its reclaim and swap (<see cref="Reclaim"/>). Daemons (reclaim, KSM, migration) attach here.
/// </summary>
public sealed class Host : IDisposable, IFrameObserver
{
    private readonly ConcurrentDictionary<int, Mm> _mms = new();
    private int _nextMmId;
    private volatile IHostTrace? _trace;
    private bool _disposed;
    private readonly Lock _hugeZeroLock = new();
    private Pfn? _hugeZero;

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
        Ksm = new KsmScanner(this);
        Migration = new Migrator(this);
        NumaBalancing = new NumaBalancer(this);
        Khugepaged = new Khugepaged(this);
        try
        {
            Reclaim = new Reclaimer(this, options.Reclaim, options.Swap);
        }
        catch
        {
            Memory.Dispose();
            throw;
        }
    }

    /// <summary>The options the host was built with.</summary>
    public HostOptions Options { get; }

    /// <summary>Host RAM.</summary>
    public HostMemory Memory { get; }

    /// <summary>Memory cgroups, LRU lists, the background reclaimer's step, and swap.</summary>
    public Reclaimer Reclaim { get; }

    /// <summary>The KSM scanner (ksmd): one per host, over every process's mergeable memory.</summary>
    public KsmScanner Ksm { get; }

    /// <summary>Page migration between NUMA nodes (move_pages, migrate_pages, mbind's move).</summary>
    public Migrator Migration { get; }

    /// <summary>Automatic NUMA balancing: the PROT_NONE scanner and the hinting faults' migration (off until enabled).</summary>
    public NumaBalancer NumaBalancing { get; }

    /// <summary>khugepaged: collapses small pages back into transparent huge pages (nothing while THP is off).</summary>
    public Khugepaged Khugepaged { get; }

    /// <summary>The shared zero page: read faults on never-written anonymous memory map it read-only.</summary>
    public Pfn ZeroPfn { get; }

    /// <summary>
    /// The huge zero page (a 2 MiB block of zeroes, every frame reserved), allocated at its first use: read faults on
    /// untouched huge-page-eligible memory map it read-only with one huge leaf. False when no whole block was free.
    /// </summary>
    internal bool TryGetHugeZeroPage(out Pfn first)
    {
        lock (_hugeZeroLock)
        {
            if (_hugeZero is null)
            {
                if (!Memory.TryAllocateBlock(0, AllocationFlags.Zero, out var block))
                {
                    first = default;
                    return false;
                }

                for (var i = 0UL; i < PageTables.HostPageTable.HugePageFrames; i++)
                {
                    Memory.SetFlags(block + i, FrameFlags.Reserved);
                }

                _hugeZero = block;
            }

            first = _hugeZero.Value;
            return true;
        }
    }

    /// <summary>True when <paramref name="pfn"/> is the first frame of the huge zero page.</summary>
    internal bool IsHugeZeroPage(Pfn pfn) => _hugeZero is { } zero && zero == pfn;

    /// <summary>Where host steps (PTE changes, TLB flushes, frame frees) are reported; null for none.</summary>
    public IHostTrace? Trace
    {
        get => _trace;
        set => _trace = value;
    }

    /// <summary>The live processes.</summary>
    public IReadOnlyCollection<Mm> Mms => [.. _mms.Values.OrderBy(mm => mm.Id)];

    /// <summary>
    /// Creates an empty process whose page tables and first-touch frames prefer <paramref name="preferredNode"/>, charged
    /// to <paramref name="cgroup"/> (the root cgroup when null).
    /// </summary>
    public Mm CreateMm(int preferredNode = 0, MemoryCgroup? cgroup = null)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (preferredNode < 0 || preferredNode >= Memory.NodeCount)
        {
            throw new ArgumentOutOfRangeException(nameof(preferredNode), preferredNode,
                $"preferred node must be in [0, {Memory.NodeCount}): the host has {Memory.NodeCount} NUMA nodes");
        }

        var mm = new Mm(this, Interlocked.Increment(ref _nextMmId), preferredNode, cgroup ?? Reclaim.Root);
        _mms[mm.Id] = mm;
        return mm;
    }

    /// <summary>A snapshot of host-wide counters.</summary>
    public HostStats Stats => new()
    {
        Memory = Memory.GetStats(),
        Processes = _mms.Count,
        RssPages = _mms.Values.Sum(mm => mm.Stats.RssPages),
        CowKsm = Ksm.CowKsm,
        KsmSwpinCopy = Ksm.SwpinCopy,
    };

    /// <summary>Frees host RAM. Every process must have exited.</summary>
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        Reclaim.Dispose();
        Memory.Dispose();
    }

    /// <inheritdoc />
    void IFrameObserver.OnFrameFreed(Pfn pfn) => _trace?.FrameFreed(pfn);

    /// <summary>Called by <see cref="Mm.Exit"/> once the process is gone.</summary>
    internal void Forget(Mm mm) => _mms.TryRemove(mm.Id, out _);
}
