using Hypervisor.HostMm.Frames;
using Hypervisor.HostMm.PageTables;
using Hypervisor.HostMm.Reclaim;
using Hypervisor.HostMm.Vmas;

namespace Hypervisor.HostMm;

/// <summary>
/// One host process's memory (Linux's <c>mm_struct</c>): its VMAs, its 4-level page tables in x86-64
/// format, its mmap lock and its notifier chain. Every operation emits notifier calls in the order of
/// <c>reference/mmu-notifier.md</c> §3 (current Linux).
/// </summary>
/// <remarks>
/// <para>Lock order: mmap lock → frame lock (<see cref="FrameFlags.Locked"/>) → page-table lock (PTL) →
/// a secondary MMU's own lock. Notifier start/end are issued only through an <see cref="Invalidation"/>
/// scope, under the mmap lock (or, for the pressure daemons, a reverse-map lock) and never under a PTL;
/// young ops and change_pte run under a PTL. Frames are allocated before a PTL is taken, never under it. The KSM
/// scanner's scan lock comes before every mmap lock (it takes the scanned process's for read, another process's only
/// without waiting); its leaf lock is taken under any of these and never held while taking another.</para>
/// <para>The mmap lock is taken for write by mmap, munmap, mprotect, mremap, fork and exit, and for read by
/// faults, get-user-pages, the read/write helpers and madvise (as in Linux). Operations under the read lock
/// race only on PTEs, which the PTL serialises, and re-check a PTE after retaking its lock.</para>
/// <para>Invariant: every present PTE that maps a frame other than the zero page holds one reference and one
/// mapcount on that frame; a frame is freed only after the notifier start covering its last mapping returned
/// and after the CPU TLB flush that follows the PTE clear.</para>
/// </remarks>
public sealed partial class Mm : IMm, IDisposable
{
    /// <summary>Lowest address <see cref="Mmap"/> chooses by itself.</summary>
    public static readonly Hva MmapBase = new(0x0000_1000_0000_0000);

    /// <summary>Exclusive end of a process's user address space (47-bit, 4-level paging).</summary>
    public static readonly Hva UserSpaceEnd = new(1UL << 47);

    private readonly ReaderWriterLockSlim _mmapLock = new(LockRecursionPolicy.NoRecursion);
    private VmaSet _vmas = new();
    private readonly HostPageTable _pageTable;
    private volatile bool _exited;

    // Anon families (VMA AnonIds) this process is a member of in the host's reverse map; changed under the mmap write lock.
    private readonly HashSet<int> _families = [];

    private long _rssPages;
    private long _swapEntries;
    private long _swapInFaults;
    private long _swapCacheFaults;
    private long _memoryFailureFaults;
    private long _outOfMemoryFaults;
    private long _demandZeroFaults;
    private long _zeroPageFaults;
    private long _copyOnWriteFaults;
    private long _writeReuseFaults;
    private long _spuriousFaults;
    private long _failedFaults;
    private long _gupCalls;
    private long _pagesZapped;
    private long _pagesProtected;
    private long _pagesMoved;
    private long _mmapCalls;
    private long _munmapCalls;
    private long _mprotectCalls;
    private long _mremapCalls;
    private long _madviseCalls;
    private long _forkCalls;

    internal Mm(Host host, int id, int preferredNode, MemoryCgroup cgroup)
    {
        Host = host;
        Id = id;
        PreferredNode = preferredNode;
        Cgroup = cgroup;
        Notifiers = new MmuNotifierChain(this, host.Options.NotifierEra);
        _pageTable = new HostPageTable(host.Memory, preferredNode);
    }

    /// <inheritdoc />
    public int Id { get; }

    /// <inheritdoc />
    public MmuNotifierChain Notifiers { get; }

    /// <summary>The host this process runs on.</summary>
    public Host Host { get; }

    /// <summary>NUMA node for this process's page tables and first-touch frames.</summary>
    public int PreferredNode { get; }

    /// <summary>The memory cgroup this process's anonymous and swap-cache pages are charged to.</summary>
    public MemoryCgroup Cgroup { get; }

    /// <summary>True once <see cref="Exit"/> has run.</summary>
    public bool HasExited => _exited;

    /// <summary>The page tables (read-only use: audits, dumps).</summary>
    public HostPageTable PageTable => _pageTable;

    /// <summary>A snapshot of the VMAs in address order.</summary>
    public IReadOnlyList<Vma> Vmas
    {
        get
        {
            _mmapLock.EnterReadLock();
            try
            {
                return [.. _vmas];
            }
            finally
            {
                _mmapLock.ExitReadLock();
            }
        }
    }

    /// <summary>A snapshot of this process's counters.</summary>
    public MmStats Stats => new()
    {
        RssPages = Volatile.Read(ref _rssPages),
        SwapEntries = Volatile.Read(ref _swapEntries),
        SwapInFaults = Volatile.Read(ref _swapInFaults),
        SwapCacheFaults = Volatile.Read(ref _swapCacheFaults),
        MemoryFailureFaults = Volatile.Read(ref _memoryFailureFaults),
        OutOfMemoryFaults = Volatile.Read(ref _outOfMemoryFaults),
        Vmas = _vmas.Count,
        MappedPages = _vmas.TotalPages,
        PageTablePages = _exited ? 0 : _pageTable.TablePages,
        DemandZeroFaults = Volatile.Read(ref _demandZeroFaults),
        ZeroPageFaults = Volatile.Read(ref _zeroPageFaults),
        CopyOnWriteFaults = Volatile.Read(ref _copyOnWriteFaults),
        WriteReuseFaults = Volatile.Read(ref _writeReuseFaults),
        SpuriousFaults = Volatile.Read(ref _spuriousFaults),
        FailedFaults = Volatile.Read(ref _failedFaults),
        GetUserPagesCalls = Volatile.Read(ref _gupCalls),
        PagesZapped = Volatile.Read(ref _pagesZapped),
        PagesProtected = Volatile.Read(ref _pagesProtected),
        PagesMoved = Volatile.Read(ref _pagesMoved),
        Calls = (Volatile.Read(ref _mmapCalls), Volatile.Read(ref _munmapCalls), Volatile.Read(ref _mprotectCalls),
            Volatile.Read(ref _mremapCalls), Volatile.Read(ref _madviseCalls), Volatile.Read(ref _forkCalls)),
    };

    /// <summary>Exits the process if it has not exited yet.</summary>
    public void Dispose()
    {
        if (!_exited)
        {
            Exit();
        }
    }

    /// <inheritdoc />
    public override string ToString() => $"mm {Id}";

    /// <summary>The CPU TLB flush for <c>[start, end)</c>; secondary TLBs are flushed inside the same step (Linux 6.6+).</summary>
    internal void FlushTlb(Hva start, Hva end)
    {
        Host.Trace?.TlbFlushed(this, start, end);
        Notifiers.InvalidateSecondaryTlbs(start, end);
    }

    /// <summary>Reports a PTE change to the host trace, if one is attached.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal void TracePte(Hva address, HostPte before, HostPte after) => Host.Trace?.PteChanged(this, address, before, after);

    /// <summary>Drops the references a zap or move gathered, after the TLB flush (Linux's <c>tlb_finish_mmu</c>).</summary>
    internal void FreeGathered(List<Pfn> gathered)
    {
        Host.Memory.PutMany(CollectionsMarshal.AsSpan(gathered));
        gathered.Clear();
    }

    internal void AddRss(long pages) => Interlocked.Add(ref _rssPages, pages);

    /// <summary>Counts swap PTEs gained (or lost, negative): Linux's <c>MM_SWAPENTS</c>.</summary>
    internal void AddSwapEntries(long entries) => Interlocked.Add(ref _swapEntries, entries);

    /// <summary>
    /// For a reverse-map walk from another thread: takes the mmap lock for read without waiting. True when the walk may
    /// look at this process's VMAs and page tables: either the lock was taken (<paramref name="taken"/>, release it with
    /// <see cref="ExitRmapRead"/>) or this thread already holds it (read or write). False when it is busy (a writer holds
    /// or waits for it) or the process has exited.
    /// </summary>
    internal bool TryEnterRmapRead(out bool taken)
    {
        taken = false;
        if (_mmapLock.IsReadLockHeld || _mmapLock.IsWriteLockHeld)
        {
            return !_exited;
        }

        if (_exited || !_mmapLock.TryEnterReadLock(0))
        {
            return false;
        }

        if (_exited)
        {
            _mmapLock.ExitReadLock();
            return false;
        }

        taken = true;
        return true;
    }

    /// <summary>Drops the read lock <see cref="TryEnterRmapRead"/> took.</summary>
    internal void ExitRmapRead() => _mmapLock.ExitReadLock();

    /// <summary>The VMA set itself, for a walk by reclaim's aging; call with the mmap lock held (read is enough) and only enumerate it.</summary>
    internal VmaSet VmasLocked => _vmas;

    /// <summary>
    /// Where this process would map the page of anon family <paramref name="family"/> with linear index
    /// <paramref name="index"/>: the address of that index in the VMA of the family that covers it. The page's own
    /// address (index × 4096, where an anonymous mmap puts it) is tried first; only a VMA moved by mremap needs the
    /// scan of every VMA. Call with the mmap lock held (read is enough).
    /// </summary>
    internal bool TryFindAnonMapping(int family, ulong index, out Hva address)
    {
        if (index < (UserSpaceEnd.Value >> Paging.PageShift))
        {
            var guess = new Hva(index << Paging.PageShift);
            var vma = _vmas.Find(guess);
            if (vma is not null && vma.AnonId == family && vma.PageIndexOf(guess) == index)
            {
                address = guess;
                return true;
            }
        }

        foreach (var vma in _vmas)
        {
            if (vma.AnonId == family && index >= vma.PageOffset && index - vma.PageOffset < vma.Pages)
            {
                address = vma.AddressOfIndex(index);
                return true;
            }
        }

        address = default;
        return false;
    }

    /// <summary>Makes this process a member of the anon family <paramref name="family"/> (call under the mmap write lock, before the family's pages can be mapped here).</summary>
    internal void JoinFamily(long family)
    {
        var id = checked((int)family);
        if (_families.Add(id))
        {
            Host.Reclaim.Rmap.Join(id, this);
        }
    }

    internal void CountZapped(long pages) => Interlocked.Add(ref _pagesZapped, pages);

    /// <summary>Present-PTE flag bits for a mapping with <paramref name="protection"/> (W only when <paramref name="writable"/>).</summary>
    internal static ulong PteFlags(Protection protection, bool writable)
    {
        var flags = HostPte.UserBit;
        if (writable && (protection & Protection.Write) != 0)
        {
            flags |= HostPte.WritableBit;
        }

        if ((protection & Protection.Execute) == 0)
        {
            flags |= HostPte.NoExecuteBit;
        }

        return flags;
    }

    private static Hva CheckRange(Hva start, ulong length, string operation)
    {
        if (length == 0)
        {
            throw new InvalidRangeException(NotifierRule.EmptyOrReversedRange, $"{operation} at {start} with length 0: the length must be positive", nameof(length));
        }

        if (!start.IsPageAligned)
        {
            throw new InvalidRangeException(NotifierRule.UnalignedRange, $"{operation} at {start}: the address must be a multiple of {Paging.PageSize}", nameof(start));
        }

        var pages = (length + Paging.PageOffsetMask) >> Paging.PageShift;
        var end = start + (pages << Paging.PageShift);
        if (end <= start || end > UserSpaceEnd)
        {
            throw new InvalidRangeException(
                NotifierRule.OutsideAddressSpace,
                $"{operation} [{start}, +{length:#,0}) leaves the user address space: it must end at or below {UserSpaceEnd}",
                nameof(length));
        }

        return end;
    }

    private void ThrowIfExited(string operation)
    {
        if (_exited)
        {
            throw new MmExitedException(Id, operation);
        }
    }

    private void EnterWrite(string operation)
    {
        ThrowIfExited(operation);
        _mmapLock.EnterWriteLock();
        if (_exited)
        {
            _mmapLock.ExitWriteLock();
            throw new MmExitedException(Id, operation);
        }
    }

    private void EnterRead(string operation)
    {
        ThrowIfExited(operation);
        _mmapLock.EnterReadLock();
        if (_exited)
        {
            _mmapLock.ExitReadLock();
            throw new MmExitedException(Id, operation);
        }
    }
}
