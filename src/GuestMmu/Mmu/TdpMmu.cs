using System.Diagnostics;
using Hypervisor.GuestMmu.Backing;
using Hypervisor.GuestMmu.Diagnostics;
using Hypervisor.GuestMmu.Ept;
using Hypervisor.GuestMmu.Memslots;
using Hypervisor.GuestMmu.Tlb;

namespace Hypervisor.GuestMmu.Mmu;

/// <summary>
/// A KVM-like two-dimensional-paging MMU for one VM: EPT sptes mapping guest frames to host frames of the
/// memslots' backings, kept coherent only through the MMU-notifier chain — no guest page is pinned. It owns the
/// VM's memslots: every change goes through <see cref="SetMemoryRegion"/>, which zaps what the change unmaps.
/// </summary>
/// <remarks>
/// <para>Lock order: host mmap lock (taken inside the backing's resolve, never held here) → <c>_mmuLock</c>
/// (KVM's mmu_lock) → the memslot set's writer lock and the EPT table locks (leaves). The fault path calls get-user-pages before it takes
/// <c>_mmuLock</c>, never while holding it, and holds it for read; notifier start/end, aging, change_pte and
/// release hold it for write. Nothing under <c>_mmuLock</c> waits on the host. <c>_invalidationGate</c> (the
/// invalidation wait) is a leaf outside that order: never taken under <c>_mmuLock</c> or the table locks, and
/// nothing is taken under it.</para>
/// <para>Invalidation protocol (reference/kvm-mmu.md §2): start counts an invalidation in progress and widens
/// the in-progress gfn range (a union of every concurrent range) before zapping; end bumps the sequence and
/// then uncounts. A fault snapshots the sequence before get-user-pages and, under the lock, retries if an
/// invalidation is in progress over its gfn or the sequence moved. Invariant: a pfn obtained before an
/// invalidation began is never installed after that invalidation's start returned.</para>
/// <para>A fault that finds an invalidation in progress over its gfn blocks on <c>_invalidationGate</c> until
/// that invalidation ends (or the MMU is released), holding nothing; it then restarts the protocol from the
/// snapshot. A fault stale only because the sequence or the memslots moved restarts at once.</para>
/// <para>vCPUs handle EPT violations outside guest mode (a violation is a VM exit), so the TLB shootdown in
/// start never waits for a vCPU blocked on <c>_mmuLock</c> or waiting on <c>_invalidationGate</c>.</para>
/// </remarks>
public sealed class TdpMmu : IMmuNotifier, IDisposable
{
    private readonly ReaderWriterLockSlim _mmuLock = new(LockRecursionPolicy.NoRecursion);
    private readonly TdpMmuOptions _options;

    // DirtyTrackingPolicy.OnMap: the fault path marks frames dirty when it maps them writable; zaps and aging
    // never report. Invariant under it: every frame a present writable spte maps has been marked dirty in its
    // backing since that spte was installed (the mark happens under _mmuLock for read, before the install's
    // short-term reference is released, so no zap and hence no writeback can come between).
    private readonly bool _markDirtyOnMap;
    private readonly List<MmuNotifierSubscription> _subscriptions = [];

    // Serialises SetMemoryRegion callers (KVM's slots_lock): attach, then publish and zap under _mmuLock. Taken
    // before _mmuLock, never under it, and never from a notifier callback.
    private readonly Lock _slotsLock = new();

    // Written under _mmuLock for write; read without it by the fault path's pre-check (acquire reads).
    private long _invalidateSequence;
    private int _inProgress;
    private ulong _rangeStart;
    private ulong _rangeEnd;
    private volatile bool _released;
    private volatile IMmuTrace? _trace;

    // The invalidation wait. Rules:
    // - A fault waits here only while an invalidation in progress covers its gfn, and only holding nothing:
    //   not _mmuLock, not the page reference from get-user-pages, no host lock (the host's mmap lock is taken
    //   and dropped inside get-user-pages), and outside guest mode.
    // - A leaf lock: nothing is acquired while holding it, and it is never taken under _mmuLock (end and release
    //   signal after dropping the write lock). A host thread may take it holding its mmap lock.
    // - No lost wake-up: a waiter increments _invalidationWaiters (a full fence), then re-checks the in-progress
    //   state under the gate before each Monitor.Wait; end and release change that state, fence, and pulse
    //   under the gate when _invalidationWaiters is non-zero (Dekker: one side sees the other's write).
    //   Each Monitor.Wait is bounded by InvalidationWaitSlice anyway, after which the waiter re-checks.
    // - Signalled by end when the count reaches zero (the in-progress range is a union that only clears then)
    //   and by release. A wake-up is a hint, never a licence to install: the fault re-snapshots the sequence
    //   and re-runs both checks.
    private readonly object _invalidationGate = new();
    private int _invalidationWaiters;

    private long _faults;
    private long _installs;
    private long _alreadyMapped;
    private long _retries;
    private long _invalidationWaits;
    private long _mmioExits;
    private long _hostFaults;
    private long _largeInstalls;
    private long _largeFallbacks;
    private long _invalidations;
    private long _zapped;
    private long _dirtyPropagated;
    private long _dirtyMarkedOnMap;
    private long _dirtyOrphaned;
    private long _writeProtected;
    private long _memslotZaps;
    private long _tlbFlushes;
    private long _agingCalls;
    private long _youngHits;
    private long _changePteHits;
    private long _changePteMisses;

    /// <summary>Creates the MMU with no memslots, flushing vCPU TLBs through <paramref name="shootdown"/>.</summary>
    public TdpMmu(TlbShootdown shootdown, TdpMmuOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(shootdown);
        Memslots = new MemslotSet();
        Shootdown = shootdown;
        _options = options ?? new TdpMmuOptions();
        if (!Enum.IsDefined(_options.DirtyTracking))
        {
            throw new ArgumentOutOfRangeException(
                nameof(options), _options.DirtyTracking, $"dirty tracking policy {_options.DirtyTracking} does not exist: use OnZap or OnMap");
        }

        _markDirtyOnMap = _options.DirtyTracking == DirtyTrackingPolicy.OnMap;
        Ept = new EptPageTable(accessDirtyEnabled: _options.AccessedDirtyEnabled, vectorWidth: _options.VectorWidth);
    }

    /// <summary>The VM's memslots (read-only here: change them with <see cref="SetMemoryRegion"/>).</summary>
    public MemslotSet Memslots { get; }

    /// <summary>The vCPUs' TLB shootdown.</summary>
    public TlbShootdown Shootdown { get; }

    /// <summary>The EPT page table.</summary>
    public EptPageTable Ept { get; }

    /// <summary>The options in force.</summary>
    public TdpMmuOptions Options => _options;

    /// <summary>True once the backing process exited and the MMU was released.</summary>
    public bool IsReleased => _released;

    /// <summary>
    /// Upper bound of one sleep of a fault waiting for an invalidation to end, after which it re-checks; only a
    /// guard against a lost wake-up (end and release wake waiters). Tests lengthen it to prove the wake-up.
    /// </summary>
    internal TimeSpan InvalidationWaitSlice { get; set; } = TimeSpan.FromMilliseconds(10);

    /// <summary>Where events go (<see cref="IMmuTrace"/>), or null for none; may be set at any time.</summary>
    public IMmuTrace? Trace
    {
        get => _trace;
        set => _trace = value;
    }

    /// <summary>EPT violations handled so far (<see cref="TdpMmuStats.Faults"/>), read without the table walk <see cref="Stats"/> does: for samplers.</summary>
    public long FaultCount => Volatile.Read(ref _faults);

    /// <summary>Sptes zapped so far (<see cref="TdpMmuStats.Zapped"/>), read without the table walk <see cref="Stats"/> does: for samplers.</summary>
    public long ZappedCount => Volatile.Read(ref _zapped);

    /// <summary>A snapshot of the counters.</summary>
    public TdpMmuStats Stats => new()
    {
        Faults = Volatile.Read(ref _faults),
        Installs = Volatile.Read(ref _installs),
        AlreadyMapped = Volatile.Read(ref _alreadyMapped),
        Retries = Volatile.Read(ref _retries),
        InvalidationWaits = Volatile.Read(ref _invalidationWaits),
        MmioExits = Volatile.Read(ref _mmioExits),
        HostFaults = Volatile.Read(ref _hostFaults),
        LargeInstalls = Volatile.Read(ref _largeInstalls),
        LargeFallbacks = Volatile.Read(ref _largeFallbacks),
        Invalidations = Volatile.Read(ref _invalidations),
        Zapped = Volatile.Read(ref _zapped),
        DirtyPropagated = Volatile.Read(ref _dirtyPropagated),
        DirtyMarkedOnMap = Volatile.Read(ref _dirtyMarkedOnMap),
        DirtyOrphaned = Volatile.Read(ref _dirtyOrphaned),
        WriteProtected = Volatile.Read(ref _writeProtected),
        MemslotZaps = Volatile.Read(ref _memslotZaps),
        TlbFlushes = Volatile.Read(ref _tlbFlushes),
        AgingCalls = Volatile.Read(ref _agingCalls),
        YoungHits = Volatile.Read(ref _youngHits),
        ChangePteHits = Volatile.Read(ref _changePteHits),
        ChangePteMisses = Volatile.Read(ref _changePteMisses),
        PresentSptes = Ept.PresentLeaves,
        Pages2M = Ept.CountLargeLeaves(),
        TablePages = Ept.Tables,
        InvalidateSequence = Volatile.Read(ref _invalidateSequence),
        InProgress = Volatile.Read(ref _inProgress),
        Released = _released,
    };

    /// <summary>
    /// Subscribes this MMU to <paramref name="mm"/>'s notifier chain, once per process: a second call for the same
    /// process returns the existing subscription. <see cref="SetMemoryRegion"/> attaches to a slot's process itself.
    /// </summary>
    public MmuNotifierSubscription Attach(IMm mm)
    {
        ArgumentNullException.ThrowIfNull(mm);
        lock (_subscriptions)
        {
            // Registering under this lock is safe: no callback of this MMU takes it, so the chain's synchronize
            // inside Register cannot wait on a callback that waits on us.
            foreach (var existing in _subscriptions)
            {
                if (ReferenceEquals(existing.Chain, mm.Notifiers) && existing.IsListed)
                {
                    return existing;
                }
            }

            var subscription = mm.Notifiers.Register(this);
            _subscriptions.Add(subscription);
            return subscription;
        }
    }

    /// <summary>
    /// <c>KVM_SET_USER_MEMORY_REGION</c> as KVM's <c>kvm_set_memslot</c> runs it: checks the request
    /// (<see cref="MemslotSet.SetRegion"/>'s rules), subscribes to the backing's process if needed, publishes the new
    /// memslots and, before returning, zaps and flushes what the change unmaps — every spte of a deleted or moved
    /// slot — or write-protects the slot's sptes when dirty logging turns on. Size 0 deletes.
    /// </summary>
    /// <remarks>
    /// Publication and zap happen under one hold of the MMU write lock, so no notifier handler, release or fault
    /// ever sees the new memslots while an spte of the old slot is still present: every present spte lies inside a
    /// current memslot, and its dirty bit always has a backing to go to. A fault that looked up the old slot
    /// re-checks the memslot generation under the lock and retries. Call it holding no host lock.
    /// </remarks>
    /// <param name="slot">Slot id, 0 to <see cref="MemslotSet.MaxSlots"/> - 1.</param>
    /// <param name="flags">The slot's flags.</param>
    /// <param name="guestPhysicalAddress">Page-aligned guest-physical base address.</param>
    /// <param name="size">Size in bytes, a multiple of the page size; 0 deletes.</param>
    /// <param name="userspaceAddress">Page-aligned host virtual address of the base in the backing's process.</param>
    /// <param name="backing">The host memory that backs the slot; ignored (may be null) for a delete.</param>
    /// <returns>What changed.</returns>
    /// <exception cref="MemslotException">The request broke a rule; nothing changed.</exception>
    public MemslotChange SetMemoryRegion(int slot, MemslotFlags flags, Gpa guestPhysicalAddress, ulong size, Hva userspaceAddress, IGuestMemoryBacking? backing)
    {
        lock (_slotsLock)
        {
            if (size != 0 && backing is not null)
            {
                Attach(backing.Mm);
            }

            MemslotChange change;
            var flush = false;
            _mmuLock.EnterWriteLock();
            try
            {
                change = Memslots.SetRegion(slot, flags, guestPhysicalAddress, size, userspaceAddress, backing);
                if (change.RequiresZap)
                {
                    flush = ZapSlotLocked(change.Old!);
                }
                else if (change.Kind == MemslotChangeKind.FlagsChanged && change.New!.IsDirtyLogging && !change.Old!.IsDirtyLogging)
                {
                    flush = WriteProtectLocked(change.New.BaseGfn, change.New.EndGfn);
                }

                if (flush)
                {
                    FlushRemoteTlbs();
                }
            }
            finally
            {
                _mmuLock.ExitWriteLock();
            }

            return change;
        }
    }

    /// <summary>Deletes memslot <paramref name="slot"/> (<see cref="SetMemoryRegion"/> with size 0): its sptes are zapped and flushed before this returns.</summary>
    /// <returns>What changed (<see cref="MemslotChangeKind.None"/> for an id with no slot).</returns>
    /// <exception cref="MemslotException">The id is out of range.</exception>
    public MemslotChange DeleteMemoryRegion(int slot) => SetMemoryRegion(slot, MemslotFlags.None, default, 0, default, null);

    /// <summary>
    /// Handles an EPT violation at <paramref name="gpa"/> (KVM's <c>kvm_tdp_mmu_page_fault</c> path):
    /// snapshot the invalidation sequence, resolve the frame with get-user-pages (breaking copy-on-write for
    /// a write), take the MMU lock for read, retry if an invalidation touched the gfn meanwhile, else install
    /// a 4 KiB spte with compare-and-swap, writable only if the host PTE is. A retry while an invalidation is
    /// in progress over the gfn first waits, holding nothing, until that invalidation ends.
    /// </summary>
    /// <exception cref="GuestMmuReleasedException">The backing process exited (also while the fault waited).</exception>
    public EptFaultResult HandleEptViolation(Gpa gpa, EptAccess access)
    {
        var trace = _trace;
        var started = trace is null ? 0 : Stopwatch.GetTimestamp();
        var result = Fault(gpa, access);
        trace?.PageFault(gpa, access, result, started);
        return result;
    }

    /// <summary>The body of <see cref="HandleEptViolation"/>.</summary>
    private EptFaultResult Fault(Gpa gpa, EptAccess access)
    {
        Interlocked.Increment(ref _faults);
        var gfn = gpa.Gfn;
        var write = access == EptAccess.Write;
        var retries = 0;
        var installBackoff = default(SpinWait);
        while (true)
        {
            ThrowIfReleased(gpa);
            var sequence = Volatile.Read(ref _invalidateSequence);
            var slots = Memslots.Current;
            var slot = slots.FindByGfn(gfn);
            if (slot is null || (write && slot.IsReadOnly))
            {
                Interlocked.Increment(ref _mmioExits);
                return new EptFaultResult(EptFaultOutcome.Mmio, Spte.Empty, retries, slot);
            }

            if (IsStale(sequence, gfn))
            {
                retries = RetryStale(retries, gfn);
                continue;
            }

            var backing = slot.Backing;
            var page = backing.Resolve(slot.GfnToHva(gfn), write);
            if (!page.Succeeded)
            {
                Interlocked.Increment(ref _hostFaults);
                var outcome = page.Status switch
                {
                    BackingStatus.OutOfMemory => EptFaultOutcome.OutOfMemory,
                    BackingStatus.MemoryFailure => EptFaultOutcome.MemoryFailure,
                    _ => EptFaultOutcome.HostFault,
                };
                return new EptFaultResult(outcome, Spte.Empty, retries, slot) { Detail = page.Detail };
            }

            bool installRace;
            try
            {
                _mmuLock.EnterReadLock();
                try
                {
                    ThrowIfReleased(gpa);
                    if (IsStale(sequence, gfn) || Memslots.Generation != slots.Generation)
                    {
                        installRace = false;
                    }
                    else
                    {
                        var writable = page.Writable && !slot.IsReadOnly;
                        if (MaxMappingLevel(slot, gfn, page) == 2)
                        {
                            var large = MapLarge(gfn, page, writable, backing, retries, slot, out var raced);
                            if (large is { } mapped)
                            {
                                return mapped;
                            }

                            if (raced)
                            {
                                installRace = true;
                                goto released; // the entry changed under the install: retry the whole fault
                            }
                        }

                        var current = Ept.ReadAt(gfn, 1);
                        if (current.IsPresent && current.Pfn == page.Pfn && !current.IsAccessTracked && (current.IsWritable || !writable))
                        {
                            Interlocked.Increment(ref _alreadyMapped);
                            return new EptFaultResult(EptFaultOutcome.AlreadyMapped, current, retries, slot);
                        }

                        var spte = Spte.Leaf(page.Pfn, writable, executable: true, large: false, accessed: true);
                        if (Ept.Install(gfn, 1, current, spte) == InstallResult.Installed)
                        {
                            if (writable && _markDirtyOnMap)
                            {
                                // Still under the read lock and the short-term reference: no zap can have
                                // removed the spte, so no writeback can have run between install and mark.
                                backing.MarkDirty(page.Pfn, 1);
                                Interlocked.Increment(ref _dirtyMarkedOnMap);
                            }

                            Interlocked.Increment(ref _installs);
                            return new EptFaultResult(EptFaultOutcome.Installed, spte, retries, slot);
                        }

                        installRace = true;
                    }

                released:;
                }
                finally
                {
                    _mmuLock.ExitReadLock();
                }
            }
            finally
            {
                backing.Release(page.Pfn);
            }

            // Neither _mmuLock nor the page reference is held here: the only place after get-user-pages where
            // the fault may wait or back off.
            retries = installRace ? RetryInstallRace(retries, ref installBackoff) : RetryStale(retries, gfn);
        }
    }

    /// <summary>
    /// KVM's <c>kvm_mmu_max_mapping_level</c>: 2 (one 2 MiB leaf) when large pages are on, the host maps the page with a
    /// huge leaf (<c>host_pfn_mapping_level</c>), the memslot is not logging dirty pages, the aligned 2 MiB of guest
    /// frames around <paramref name="gfn"/> lies inside the memslot, and its host addresses are 2 MiB-aligned there too
    /// (the gpa and hva agree modulo 2 MiB); 1 otherwise.
    /// </summary>
    private int MaxMappingLevel(Memslot slot, Gfn gfn, BackingPage page)
    {
        const ulong frames = 512;
        if (!_options.LargePages || !page.HostHuge || slot.IsDirtyLogging)
        {
            return 1;
        }

        var first = new Gfn(gfn.Value & ~(frames - 1));
        if (!slot.ContainsGfn(first) || !slot.ContainsGfn(first + (frames - 1)))
        {
            return 1;
        }

        return (slot.GfnToHva(first).Value & ((frames << Paging.PageShift) - 1)) == 0 ? 2 : 1;
    }

    /// <summary>
    /// The 2 MiB install of a fault (under the MMU lock for read and the page's short-term reference): one large leaf for
    /// the host huge page's 512 frames. Null with <paramref name="raced"/> false when the level-2 entry is a page table
    /// that still holds entries (map this frame at 4 KiB instead); null with <paramref name="raced"/> when the entry
    /// changed (retry the fault).
    /// </summary>
    private EptFaultResult? MapLarge(Gfn gfn, BackingPage page, bool writable, IGuestMemoryBacking backing, int retries, Memslot slot, out bool raced)
    {
        raced = false;
        var head = new Pfn(page.Pfn.Value - (gfn.Value & 511));
        var current = Ept.ReadAt(gfn, 2);
        if (current.IsPresent && current.IsLeaf(2) && current.Pfn == head && !current.IsAccessTracked && (current.IsWritable || !writable))
        {
            Interlocked.Increment(ref _alreadyMapped);
            return new EptFaultResult(EptFaultOutcome.AlreadyMapped, current, retries, slot);
        }

        var spte = Spte.Leaf(head, writable, executable: true, large: true, accessed: true);
        switch (Ept.Install(gfn, 2, current, spte))
        {
            case InstallResult.Installed:
                if (writable && _markDirtyOnMap)
                {
                    backing.MarkDirty(head, 512);
                    Interlocked.Increment(ref _dirtyMarkedOnMap);
                }

                Interlocked.Increment(ref _installs);
                Interlocked.Increment(ref _largeInstalls);
                return new EptFaultResult(EptFaultOutcome.Installed, spte, retries, slot);
            case InstallResult.TablePopulated:
                Interlocked.Increment(ref _largeFallbacks);
                return null;
            default:
                raced = true;
                return null;
        }
    }

    /// <inheritdoc />
    public bool InvalidateRangeStart(in NotifierRange range)
    {
        Interlocked.Increment(ref _invalidations);
        var trace = _trace;
        var started = trace is null ? 0 : Stopwatch.GetTimestamp();
        var flush = false;
        long zappedHere = 0;
        _mmuLock.EnterWriteLock();
        try
        {
            // Counted even when no memslot overlaps, so start and end stay balanced across memslot changes.
            if (_inProgress++ == 0)
            {
                _rangeStart = ulong.MaxValue;
                _rangeEnd = 0;
            }

            foreach (var hit in Memslots.OverlappingHva(range.Mm, range.Start, range.End))
            {
                Volatile.Write(ref _rangeStart, Math.Min(_rangeStart, hit.Start.Value));
                Volatile.Write(ref _rangeEnd, Math.Max(_rangeEnd, hit.End.Value));
                var zapped = ZapLocked(hit.Slot.Backing, hit.Start, hit.End);
                zappedHere += zapped.Zapped;
                flush |= zapped.FlushNeeded;
            }

            if (flush)
            {
                FlushRemoteTlbs();
            }
        }
        finally
        {
            _mmuLock.ExitWriteLock();
        }

        trace?.UnmapHvaRange(range.Start, range.End, range.Event, zappedHere, started);
        return true;
    }

    /// <inheritdoc />
    public void InvalidateRangeEnd(in NotifierRange range)
    {
        bool quiescent;
        _mmuLock.EnterWriteLock();
        try
        {
            // Sequence first, then the count: a lock-free reader that sees the count drop also sees the new sequence.
            Volatile.Write(ref _invalidateSequence, _invalidateSequence + 1);
            Volatile.Write(ref _inProgress, _inProgress - 1);
            quiescent = _inProgress == 0;
        }
        finally
        {
            _mmuLock.ExitWriteLock();
        }

        if (quiescent)
        {
            WakeInvalidationWaiters();
        }
    }

    /// <inheritdoc />
    public bool ClearFlushYoung(IMm mm, Hva start, Hva end) => Age(mm, start, end, clear: true);

    /// <inheritdoc />
    public bool ClearYoung(IMm mm, Hva start, Hva end) => Age(mm, start, end, clear: true);

    /// <summary>
    /// clear_young answering per page for a range (the multi-gen LRU's walk of one PTE table): with A/D bits, one
    /// pass under the MMU lock over each overlapping memslot's gfns (<see cref="EptPageTable.ClearAccessedBitmap"/>),
    /// setting bit <c>i</c> of <paramref name="young"/> for the page at <c>start + i × 4096</c>; without them, page by
    /// page through <see cref="ClearYoung"/> (access tracking reports dirty frames per leaf).
    /// </summary>
    public void ClearYoungBitmap(IMm mm, Hva start, Hva end, Span<ulong> young) => AgeBitmap(mm, start, end, young, flush: false);

    /// <summary>
    /// clear_flush_young answering per page for a range (the classic LRU's batched aging of one PTE table's run): as
    /// <see cref="ClearYoungBitmap"/>, then ONE remote TLB flush for the whole range when any page was young (none when
    /// all were old), still under the MMU lock so no vCPU keeps a stale young translation past the return. Without A/D
    /// bits, page by page through <see cref="ClearFlushYoung"/>.
    /// </summary>
    public void ClearFlushYoungBitmap(IMm mm, Hva start, Hva end, Span<ulong> young) => AgeBitmap(mm, start, end, young, flush: true);

    /// <summary>The bitmap aging of <see cref="ClearYoungBitmap"/> and <see cref="ClearFlushYoungBitmap"/>; <paramref name="flush"/> flushes once when any was young.</summary>
    private void AgeBitmap(IMm mm, Hva start, Hva end, Span<ulong> young, bool flush)
    {
        if (!_options.AccessedDirtyEnabled)
        {
            var pages = (int)((end - start) >> Paging.PageShift);
            for (var i = 0; i < pages; i++)
            {
                var page = start + ((ulong)i << Paging.PageShift);
                if (flush ? ClearFlushYoung(mm, page, page + Paging.PageSize) : ClearYoung(mm, page, page + Paging.PageSize))
                {
                    young[i >> 6] |= 1UL << (i & 63);
                }
            }

            return;
        }

        Interlocked.Increment(ref _agingCalls);
        long found = 0;
        _mmuLock.EnterWriteLock();
        try
        {
            foreach (var hit in Memslots.OverlappingHva(mm, start, end))
            {
                // The hit's gfns map hvas from GfnToHva(hit.Start) on; its bits start at that page's index in the range.
                var offset = (int)((hit.Slot.GfnToHva(hit.Start) - start) >> Paging.PageShift);
                found += Ept.ClearAccessedBitmap(hit.Start, hit.End, young, offset);
            }

            if (flush && found > 0)
            {
                FlushRemoteTlbs();
            }
        }
        finally
        {
            _mmuLock.ExitWriteLock();
        }

        if (found > 0)
        {
            Interlocked.Increment(ref _youngHits);
        }

        _trace?.AgeHva(start, end, found > 0);
    }

    /// <inheritdoc />
    public bool TestYoung(IMm mm, Hva address)
    {
        Interlocked.Increment(ref _agingCalls);
        var young = false;
        _mmuLock.EnterReadLock();
        try
        {
            foreach (var hit in Memslots.OverlappingHva(mm, address.PageAligned, address.PageAligned + Paging.PageSize))
            {
                if (Ept.TestYoung(hit.Start))
                {
                    Interlocked.Increment(ref _youngHits);
                    young = true;
                    break;
                }
            }
        }
        finally
        {
            _mmuLock.ExitReadLock();
        }

        _trace?.TestAgeHva(address, young);
        return young;
    }

    /// <summary>
    /// Historical change_pte (Linux 2.6.32–6.9): if an spte still maps the page, point it at the new frame
    /// read-only (or zap it when the new PTE is writable) and count a hit; otherwise count a miss. Since Linux
    /// 3.6 the host calls this inside a start/end pair whose start already zapped the spte, so it only misses.
    /// </summary>
    public void ChangePte(IMm mm, Hva address, HostPte pte)
    {
        var hitAny = false;
        _mmuLock.EnterWriteLock();
        try
        {
            foreach (var hit in Memslots.OverlappingHva(mm, address.PageAligned, address.PageAligned + Paging.PageSize))
            {
                var current = Ept.Read(hit.Start);
                if (!current.IsPresent)
                {
                    continue;
                }

                hitAny = true;
                ZapLocked(hit.Slot.Backing, hit.Start, hit.Start + 1);
                if (!pte.IsWritable && pte.IsPresent)
                {
                    Ept.Install(hit.Start, 1, Spte.Empty, Spte.Leaf(pte.Pfn, writable: false, executable: true, large: false, accessed: current.IsAccessed));
                }
            }

            if (hitAny)
            {
                Interlocked.Increment(ref _changePteHits);
                FlushRemoteTlbs();
            }
            else
            {
                Interlocked.Increment(ref _changePteMisses);
            }
        }
        finally
        {
            _mmuLock.ExitWriteLock();
        }

        _trace?.SetSpteHva(address, hitAny);
    }

    /// <summary>The backing process exits: zap every spte and refuse new mappings for good.</summary>
    public void Release(IMm mm)
    {
        ZapResult zapped;
        _mmuLock.EnterWriteLock();
        try
        {
            _released = true;
            if (_markDirtyOnMap)
            {
                zapped = Ept.ZapAllUnreported();
            }
            else
            {
                var sink = new MemslotDirtySink(Memslots.Current);
                zapped = Ept.ZapAll(ref sink);
                Interlocked.Add(ref _dirtyPropagated, sink.Marked);
                Interlocked.Add(ref _dirtyOrphaned, sink.Orphaned);
            }

            Interlocked.Add(ref _zapped, zapped.Zapped);
            FlushRemoteTlbs();
            Ept.ReclaimRetiredTables(); // every vCPU acknowledged the flush: no walker can still hold a retired table
        }
        finally
        {
            _mmuLock.ExitWriteLock();
        }

        WakeInvalidationWaiters(); // a fault waiting for an invalidation wakes, sees _released and throws
        _trace?.Release(zapped.Zapped);
    }

    /// <summary>
    /// Zaps every spte of a memslot that was deleted or moved (KVM's <c>kvm_arch_flush_shadow_memslot</c>) and moves
    /// the invalidation sequence, so a fault that resolved a frame through the old slot retries. Call holding
    /// <c>_mmuLock</c> for write; the caller flushes when this returns true.
    /// </summary>
    private bool ZapSlotLocked(Memslot slot)
    {
        var zapped = ZapLocked(slot.Backing, slot.BaseGfn, slot.EndGfn);
        Interlocked.Increment(ref _memslotZaps);
        Volatile.Write(ref _invalidateSequence, _invalidateSequence + 1);
        return zapped.FlushNeeded;
    }

    /// <summary>
    /// Zaps the leaves of <c>[start, end)</c>, which lie in one memslot backed by <paramref name="backing"/>, and
    /// counts them: under <see cref="DirtyTrackingPolicy.OnZap"/> each dirty leaf's frames are marked dirty in the
    /// backing first; under <see cref="DirtyTrackingPolicy.OnMap"/> dirty bits are not looked at (the frames were
    /// marked when mapped writable). Call holding <c>_mmuLock</c> for write; the caller flushes when
    /// <see cref="ZapResult.FlushNeeded"/>.
    /// </summary>
    private ZapResult ZapLocked(IGuestMemoryBacking backing, Gfn start, Gfn end)
    {
        ZapResult zapped;
        if (_markDirtyOnMap)
        {
            zapped = Ept.ZapLeavesUnreported(start, end);
        }
        else
        {
            var sink = new BackingDirtySink(backing);
            zapped = Ept.ZapLeaves(start, end, ref sink);
            Interlocked.Add(ref _dirtyPropagated, sink.Marked);
        }

        Interlocked.Add(ref _zapped, zapped.Zapped);
        return zapped;
    }

    /// <summary>
    /// Clears W on every writable leaf in <c>[start, end)</c> (KVM's <c>kvm_mmu_slot_remove_write_access</c>), so the
    /// next guest write faults; the host-writable bit stays, so that fault restores W without a new get-user-pages
    /// decision. Call holding <c>_mmuLock</c> for write; the caller flushes when this returns true. Hardware may set
    /// A/D concurrently under the lockless policy, hence the compare-and-swap.
    /// </summary>
    private bool WriteProtectLocked(Gfn start, Gfn end)
    {
        long cleared = 0;
        var iterator = Ept.Iterate(start, end);
        while (iterator.MoveNext())
        {
            ref var entry = ref iterator.Entry;
            while (true)
            {
                var spte = new Spte(Volatile.Read(ref entry));
                if (!spte.IsLeaf(iterator.Level) || !spte.IsWritable)
                {
                    break;
                }

                if (Interlocked.CompareExchange(ref entry, spte.WithoutWritable().Value, spte.Value) == spte.Value)
                {
                    cleared++;
                    break;
                }
            }
        }

        Interlocked.Add(ref _writeProtected, cleared);
        return cleared != 0;
    }

    /// <summary>Unsubscribes from every backing process and frees the EPT tables.</summary>
    public void Dispose()
    {
        MmuNotifierSubscription[] subscriptions;
        lock (_subscriptions)
        {
            subscriptions = [.. _subscriptions];
            _subscriptions.Clear();
        }

        foreach (var subscription in subscriptions)
        {
            if (subscription.IsListed)
            {
                subscription.Chain.Unregister(subscription);
            }
        }

        Ept.Dispose();
        _mmuLock.Dispose();
    }

    /// <summary>
    /// Hardware's dirty-bit update under the EPT's <see cref="HardwareAdPolicy.DirtyUnderMmuLock"/> policy:
    /// sets accessed and dirty on <paramref name="observed"/> holding the MMU lock for read, so vCPUs do it in
    /// parallel while zaps and aging (write holders) never see D appear. The caller is outside guest mode.
    /// </summary>
    internal bool SetAccessedDirtyShared(Gfn gfn, Spte observed)
    {
        _mmuLock.EnterReadLock();
        try
        {
            return Ept.TrySetAccessedDirty(gfn, observed, dirty: true);
        }
        finally
        {
            _mmuLock.ExitReadLock();
        }
    }

    /// <summary>Runs <paramref name="action"/> holding the MMU lock for write (audits, dumps).</summary>
    internal T RunExclusive<T>(Func<T> action)
    {
        _mmuLock.EnterWriteLock();
        try
        {
            return action();
        }
        finally
        {
            _mmuLock.ExitWriteLock();
        }
    }

    private bool Age(IMm mm, Hva start, Hva end, bool clear)
    {
        Interlocked.Increment(ref _agingCalls);
        var mode = _options.AccessedDirtyEnabled ? AgingMode.AccessedBit : AgingMode.AccessTracking;
        var young = mode == AgingMode.AccessedBit && end - start == Paging.PageSize
            ? AgeOnePageShared(mm, start, clear)
            : AgeLocked(mm, start, end, clear, mode);

        if (young)
        {
            Interlocked.Increment(ref _youngHits);
        }

        _trace?.AgeHva(start, end, young);
        return young;
    }

    /// <summary>
    /// One page with A/D bits, as reclaim's <c>folio_referenced_one</c> asks: the lockless aging of Linux 6.14
    /// (<see cref="EptPageTable.AgeOneAccessed"/>) under the MMU lock for read, so it neither waits for nor blocks
    /// faults and other agers. A zap (write lock) cannot run meanwhile; no dirty bit is touched, so neither dirty
    /// policy has anything to report.
    /// </summary>
    private bool AgeOnePageShared(IMm mm, Hva start, bool clear)
    {
        var young = false;
        _mmuLock.EnterReadLock();
        try
        {
            foreach (var hit in Memslots.OverlappingHva(mm, start, start + Paging.PageSize))
            {
                young |= Ept.AgeOneAccessed(hit.Start, clear);
            }
        }
        finally
        {
            _mmuLock.ExitReadLock();
        }

        return young;
    }

    /// <summary>A range, or any range without A/D bits (access tracking drops W, so it reports dirty frames): under the MMU lock for write.</summary>
    private bool AgeLocked(IMm mm, Hva start, Hva end, bool clear, AgingMode mode)
    {
        var young = false;
        _mmuLock.EnterWriteLock();
        try
        {
            foreach (var hit in Memslots.OverlappingHva(mm, start, end))
            {
                if (_markDirtyOnMap)
                {
                    // Access tracking drops W from a writable leaf; its frame was marked dirty when it was mapped.
                    var discard = default(DiscardDirtySink);
                    young |= Ept.AgeLeaves(hit.Start, hit.End, clear, mode, ref discard).AnyYoung;
                }
                else
                {
                    var sink = new BackingDirtySink(hit.Slot.Backing);
                    young |= Ept.AgeLeaves(hit.Start, hit.End, clear, mode, ref sink).AnyYoung;
                    Interlocked.Add(ref _dirtyPropagated, sink.Marked);
                }
            }
        }
        finally
        {
            _mmuLock.ExitWriteLock();
        }

        return young;
    }

    /// <summary>True when an invalidation is in progress over <paramref name="gfn"/> or one completed since <paramref name="sequence"/>.</summary>
    private bool IsStale(long sequence, Gfn gfn) =>
        IsInvalidating(gfn) || Volatile.Read(ref _invalidateSequence) != sequence;

    /// <summary>True when an invalidation in progress covers <paramref name="gfn"/> (the first half of <see cref="IsStale"/>).</summary>
    private bool IsInvalidating(Gfn gfn) =>
        Volatile.Read(ref _inProgress) != 0
        && gfn.Value >= Volatile.Read(ref _rangeStart) && gfn.Value < Volatile.Read(ref _rangeEnd);

    /// <summary>
    /// Counts a retry of a stale fault. KVM re-enters the guest, which faults again; here, when an invalidation
    /// over <paramref name="gfn"/> is (still) in progress, the vCPU thread first waits for it to end; when the
    /// fault was stale only because the sequence or the memslots moved, it retries at once. Call holding nothing.
    /// </summary>
    private int RetryStale(int retries, Gfn gfn)
    {
        Interlocked.Increment(ref _retries);
        WaitForInvalidation(gfn);
        return retries + 1;
    }

    /// <summary>
    /// Counts a retry after the compare-and-swap lost to another writer of the spte (a racing fault, a hardware
    /// A/D update, a frozen entry being written) and backs off briefly, never sleeping. Call holding nothing.
    /// </summary>
    private int RetryInstallRace(int retries, ref SpinWait backoff)
    {
        Interlocked.Increment(ref _retries);
        backoff.SpinOnce(sleep1Threshold: -1);
        return retries + 1;
    }

    /// <summary>
    /// Blocks while an invalidation in progress covers <paramref name="gfn"/> and the MMU is not released (see
    /// the rules at <c>_invalidationGate</c>); returns at once when none covers it. Call holding nothing.
    /// </summary>
    private void WaitForInvalidation(Gfn gfn)
    {
        if (!IsInvalidating(gfn))
        {
            return;
        }

        Interlocked.Increment(ref _invalidationWaiters); // full fence: announced before the re-check below
        try
        {
            lock (_invalidationGate)
            {
                if (_released || !IsInvalidating(gfn))
                {
                    return;
                }

                Interlocked.Increment(ref _invalidationWaits);
                do
                {
                    Monitor.Wait(_invalidationGate, InvalidationWaitSlice);
                }
                while (!_released && IsInvalidating(gfn));
            }
        }
        finally
        {
            Interlocked.Decrement(ref _invalidationWaiters);
        }
    }

    /// <summary>
    /// Wakes every fault waiting for an invalidation. Call after the state change (count at zero, or released)
    /// and after dropping <c>_mmuLock</c>.
    /// </summary>
    private void WakeInvalidationWaiters()
    {
        Interlocked.MemoryBarrier(); // the state change is visible before _invalidationWaiters is read (pairs with the waiter's increment)
        if (Volatile.Read(ref _invalidationWaiters) == 0)
        {
            return;
        }

        lock (_invalidationGate)
        {
            Monitor.PulseAll(_invalidationGate);
        }
    }

    private void FlushRemoteTlbs()
    {
        Interlocked.Increment(ref _tlbFlushes);
        var trace = _trace;
        var started = trace is null ? 0 : Stopwatch.GetTimestamp();
        Shootdown.FlushAll();
        trace?.FlushRemoteTlbs(started);
    }

    private void ThrowIfReleased(Gpa gpa)
    {
        if (_released)
        {
            throw new GuestMmuReleasedException(gpa);
        }
    }
}
