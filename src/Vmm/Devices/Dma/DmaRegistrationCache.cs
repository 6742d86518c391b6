using Hypervisor.HostMm.Frames;
using Hypervisor.Notifier;
using Hypervisor.Notifier.UserEvents;
using HostProcess = Hypervisor.HostMm.Mm;

namespace Hypervisor.Vmm.Devices.Dma;

/// <summary>
/// The DMA engine's translation cache from host virtual pages of guest buffers to host frames, kept the way an RDMA
/// library's registration cache keeps them with ummunotify: each buffer range is registered by cookie on a
/// <see cref="UserEventChannel"/> of the host process before any of its pages is resolved; before every copy the
/// channel's lock-free generation counter is compared with the last one read, and only when it moved are the events
/// read and the translations they cover dropped. A dropped or missing translation is resolved again through
/// get-user-pages. Nothing is pinned beyond a copy: the cache holds frame numbers, not references.
/// </summary>
/// <remarks>
/// <para>The copy protocol (<see cref="DmaCacheMode.Safe"/>), KVM's <c>mmu_invalidate_seq</c> retry applied to a
/// device: (1) if the counter moved, read the events, drop the translations they cover, wait for the invalidations they
/// report to end (the chain's grace period: the channel reports only starts, and a page resolved between a start and
/// its PTE change would be the old frame with no further event), and remember the counter; (2) take a short-term reference on each
/// page's frame — a speculative one (<c>get_page_unless_zero</c>) on a cached frame, get-user-pages' own on a miss; (3)
/// if the counter moved since (1), drop the references and start again; (4) copy frame to frame; (5) if the counter
/// moved during the copy, drop the references and copy again (the racing invalidation may have left the frames
/// written behind the host's back: a swap-cache page already written out, say); else drop the references: done. A
/// frame is freed only after its invalidation's start bumped the counter, and a frame the engine holds a reference on is
/// freed by nobody, so a copy that passes (5) used only frames the process mapped at (1)–(3) and that nobody reused.</para>
/// <para><see cref="DmaCacheMode.Unsafe"/> caches without a channel and takes no reference on a cached frame: after a
/// swap-out, a KSM merge, a migration or a munmap it reads and writes whatever the frame holds now.
/// <see cref="DmaCacheMode.Off"/> resolves every page of every copy.</para>
/// <para>The debug check: during every copy each frame used is compared with a fresh read of the host PTE (no fault,
/// no lock); a mismatch in a copy that completes is a stale DMA (<see cref="DmaEngineCounters.StaleDmas"/>), found
/// independently of any check the guest makes.</para>
/// <para>Threads and locks: copies are serialised by the cache's lock (one copy engine). Lock order: cache lock → the
/// host's mmap lock (get-user-pages) → the channel's lock (register, read). The channel's start callback takes only the
/// channel's lock, so an invalidation never waits for a copy. The grace-period wait in (1) holds only the cache's lock,
/// and must not run on a thread an invalidation in flight waits for (a vCPU a TLB shootdown waits on): the engine copies
/// on its own thread. Counters are read from any thread.</para>
/// </remarks>
public sealed unsafe class DmaRegistrationCache : IDisposable // unsafe: copies between frames of the host arena through raw pointers.
{
    /// <summary>The most pages one copy may touch on each side (1 MiB plus the unaligned head and tail).</summary>
    public const int MaxPagesPerBuffer = 257;

    /// <summary>The most buffer ranges registered at once; past it every registration and translation is dropped (a cache flush).</summary>
    public const int MaxRegions = 4096;

    /// <summary>Times a copy is tried through the cache against a moving generation counter before it resolves every page afresh (still checked against the counter).</summary>
    public const int MaxAttempts = 64;

    private const int EventBatch = 64;

    private readonly Lock _lock = new();
    private readonly HostProcess _process;
    private readonly HostMemory _memory;
    private readonly UserEventChannel? _channel;

    // Guarded by _lock: page-aligned hva → the frame it was resolved to and whether it was resolved for writing.
    private readonly Dictionary<ulong, CachedFrame> _frames = [];

    // Guarded by _lock: registered [start, end) → cookie.
    private readonly Dictionary<(ulong Start, ulong End), ulong> _regions = [];
    private readonly UserEvent[] _events = new UserEvent[EventBatch];

    // Guarded by _lock: the pages of the copy in progress, sources first, then destinations.
    private readonly Acquired[] _acquired = new Acquired[2 * MaxPagesPerBuffer];
    private ulong _nextCookie = 1;
    private ulong _seenGeneration;
    private bool _disposed;

    // Written under _lock, read anywhere.
    private long _copies;
    private long _bytes;
    private long _hits;
    private long _misses;
    private long _invalidations;
    private long _eventsRead;
    private long _retries;
    private long _staleDmas;
    private long _stalePages;
    private long _staleFreeFrames;
    private long _blockedWrites;
    private long _failures;
    private long _barriers;
    private int _regionCount;
    private int _cachedCount;

    /// <summary>Creates the cache over <paramref name="process"/>; in <see cref="DmaCacheMode.Safe"/> it opens a user event channel on it.</summary>
    /// <param name="process">The host process whose memory the buffers are.</param>
    /// <param name="mode">How translations are cached.</param>
    /// <exception cref="MmExitedException">The process has begun to exit.</exception>
    public DmaRegistrationCache(HostProcess process, DmaCacheMode mode)
    {
        ArgumentNullException.ThrowIfNull(process);
        if (!Enum.IsDefined(mode))
        {
            throw new ArgumentOutOfRangeException(nameof(mode), mode, "the DMA cache mode is off, safe or unsafe");
        }

        _process = process;
        _memory = process.Host.Memory;
        Mode = mode;
        if (mode == DmaCacheMode.Safe)
        {
            _channel = UserEventChannel.Open(process);
            _seenGeneration = _channel.Generation;
        }
    }

    /// <summary>How translations are cached.</summary>
    public DmaCacheMode Mode { get; }

    /// <summary>The user event channel the cache listens on (safe mode only; null otherwise).</summary>
    public UserEventChannel? Channel => _channel;

    /// <summary>The counters now (read from any thread).</summary>
    public DmaEngineCounters Counters => new()
    {
        Mode = Mode,
        Copies = Interlocked.Read(ref _copies),
        Bytes = Interlocked.Read(ref _bytes),
        Hits = Interlocked.Read(ref _hits),
        Misses = Interlocked.Read(ref _misses),
        Invalidations = Interlocked.Read(ref _invalidations),
        EventsRead = Interlocked.Read(ref _eventsRead),
        Retries = Interlocked.Read(ref _retries),
        StaleDmas = Interlocked.Read(ref _staleDmas),
        StalePages = Interlocked.Read(ref _stalePages),
        StaleFreeFrames = Interlocked.Read(ref _staleFreeFrames),
        BlockedWrites = Interlocked.Read(ref _blockedWrites),
        Failures = Interlocked.Read(ref _failures),
        Barriers = Interlocked.Read(ref _barriers),
        Regions = Volatile.Read(ref _regionCount),
        CachedTranslations = Volatile.Read(ref _cachedCount),
    };

    /// <summary>Whether a translation of <paramref name="page"/> is cached now, and to which frame (tests, reports).</summary>
    /// <param name="page">A host virtual address; its page is looked up.</param>
    /// <param name="pfn">The cached frame, when there is one.</param>
    public bool TryGetCached(Hva page, out Pfn pfn)
    {
        lock (_lock)
        {
            var found = _frames.TryGetValue(page.PageAligned.Value, out var frame);
            pfn = frame.Pfn;
            return found;
        }
    }

    /// <summary>
    /// Copies <paramref name="length"/> bytes of the process's memory from <paramref name="source"/> to
    /// <paramref name="destination"/>, frame to frame, through the cached translations (see the remarks for the protocol).
    /// </summary>
    /// <param name="source">The first source byte.</param>
    /// <param name="destination">The first destination byte.</param>
    /// <param name="length">Bytes to copy: 1 to <see cref="DmaEngine.MaxLength"/>.</param>
    /// <returns><see cref="DmaStatus.Done"/>, or <see cref="DmaStatus.Fault"/> when a page could not be resolved (nothing copied).</returns>
    /// <exception cref="ArgumentOutOfRangeException">The length is out of range.</exception>
    /// <exception cref="ObjectDisposedException">The cache was disposed.</exception>
    public DmaStatus Copy(Hva source, Hva destination, int length)
    {
        if (length < 1 || length > DmaEngine.MaxLength)
        {
            throw new ArgumentOutOfRangeException(nameof(length), length, $"a DMA copies 1 to {DmaEngine.MaxLength} bytes");
        }

        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            var sourcePages = PagesSpanned(source, length);
            var destinationPages = PagesSpanned(destination, length);
            if (Mode == DmaCacheMode.Safe)
            {
                Register(source.PageAligned, sourcePages);
                Register(destination.PageAligned, destinationPages);
            }

            var mode = Mode;
            for (var attempt = 0; ; attempt++)
            {
                if (attempt == MaxAttempts)
                {
                    // The counter kept moving: resolve every page afresh from now on (nothing cached to drop). The counter is
                    // still checked around the copy: get-user-pages' references keep a frame from being freed, not the host
                    // from replacing it in the page table (a migration or a swap-out under the copy), and a copy into a
                    // replaced frame would be lost.
                    mode = DmaCacheMode.Off;
                }

                var seen = Synchronize();
                var acquired = Acquire(mode, source.PageAligned, sourcePages, destination.PageAligned, destinationPages);
                if (acquired < 0)
                {
                    Interlocked.Increment(ref _failures);
                    return DmaStatus.Fault;
                }

                if (Mode == DmaCacheMode.Safe && GenerationMoved(seen))
                {
                    ReleaseAll(acquired);
                    Interlocked.Increment(ref _retries);
                    continue;
                }

                var stalePages = CheckStale(acquired, out var staleFree);
                CopyFrames(mode, source, destination, length, sourcePages, acquired);
                if (Mode == DmaCacheMode.Safe && GenerationMoved(seen))
                {
                    ReleaseAll(acquired);
                    Interlocked.Increment(ref _retries);
                    continue;
                }

                ReleaseAll(acquired);
                if (stalePages > 0)
                {
                    Interlocked.Increment(ref _staleDmas);
                    Interlocked.Add(ref _stalePages, stalePages);
                    Interlocked.Add(ref _staleFreeFrames, staleFree);
                }

                Interlocked.Increment(ref _copies);
                Interlocked.Add(ref _bytes, length);
                return DmaStatus.Done;
            }
        }
    }

    /// <summary>Counts a copy the engine refused before it reached the cache (a bad range).</summary>
    internal void CountRefused() => Interlocked.Increment(ref _failures);

    /// <summary>Unregisters every region by closing the channel (safe mode) and drops every translation. Idempotent.</summary>
    public void Dispose()
    {
        lock (_lock)
        {
            if (_disposed)
            {
                return;
            }

            _disposed = true;
            _frames.Clear();
            _regions.Clear();
            Volatile.Write(ref _cachedCount, 0);
            Volatile.Write(ref _regionCount, 0);
        }

        _channel?.Dispose();
    }

    private static int PagesSpanned(Hva start, int length) =>
        (int)(((start.Value + (ulong)length + Paging.PageSize - 1) >> Paging.PageShift) - (start.Value >> Paging.PageShift));

    /// <summary>Registers <c>[first, first + pages)</c> unless that exact range already is. Caller holds the lock.</summary>
    private void Register(Hva first, int pages)
    {
        var key = (first.Value, first.Value + ((ulong)pages * Paging.PageSize));
        if (_regions.ContainsKey(key))
        {
            return;
        }

        if (_regions.Count >= MaxRegions)
        {
            // A translation may only be cached while a registered region covers its page: drop both together.
            foreach (var cookie in _regions.Values)
            {
                _channel!.UnregisterRegion(cookie);
            }

            _regions.Clear();
            _frames.Clear();
            Volatile.Write(ref _cachedCount, 0);
        }

        var next = _nextCookie++;
        _channel!.RegisterRegion(next, new Hva(key.Item1), new Hva(key.Item2));
        _regions.Add(key, next);
        Volatile.Write(ref _regionCount, _regions.Count);

        // An invalidation that started before the region existed sent it no event, and its PTE change may still be to
        // come: a page of the region resolved now could be the old frame with no event ever. Wait for every invalidation
        // in flight to end (the chain's grace period, as after reading events) before anything of the region is resolved.
        _process.Notifiers.Synchronize();
        Interlocked.Increment(ref _barriers);
    }

    /// <summary>
    /// Safe mode: when the generation counter moved since the last read, reads every pending event, drops the
    /// translations each one covers, and remembers the counter of the closing Last event. Returns the counter the
    /// translations are now valid for. Caller holds the lock.
    /// </summary>
    private ulong Synchronize()
    {
        if (_channel is null || _channel.Generation == _seenGeneration)
        {
            return _seenGeneration;
        }

        int read;
        var invalidates = 0;
        while ((read = _channel.Read(_events)) > 0)
        {
            foreach (var userEvent in _events.AsSpan(0, read))
            {
                if (userEvent.Type == UserEventType.Last)
                {
                    _seenGeneration = userEvent.CookieOrCounter;
                    continue;
                }

                Interlocked.Increment(ref _eventsRead);
                invalidates++;
                for (var page = userEvent.HintStart.PageAligned; page < userEvent.HintEnd; page += Paging.PageSize)
                {
                    if (_frames.Remove(page.Value))
                    {
                        Interlocked.Increment(ref _invalidations);
                    }
                }
            }
        }

        Volatile.Write(ref _cachedCount, _frames.Count);
        if (invalidates > 0)
        {
            // ummunotify reports an invalidation at its start, before the host changes the PTE; a page resolved again now
            // could still be the old frame, with no second event to come. Every start..end pair on the chain is one
            // read-side section, so the chain's grace period ends only after every invalidation already reported has ended.
            _process.Notifiers.Synchronize();
            Interlocked.Increment(ref _barriers);
        }

        return _seenGeneration;
    }

    private bool GenerationMoved(ulong seen) => _channel!.Generation != seen;

    /// <summary>
    /// Takes the frames of every source page (for reading) and destination page (for writing) into
    /// <see cref="_acquired"/>; returns how many, or -1 (with nothing held) when get-user-pages failed. Caller holds the lock.
    /// </summary>
    private int Acquire(DmaCacheMode mode, Hva source, int sourcePages, Hva destination, int destinationPages)
    {
        var count = 0;
        for (var i = 0; i < sourcePages + destinationPages; i++)
        {
            var write = i >= sourcePages;
            var page = write ? destination + ((ulong)(i - sourcePages) * Paging.PageSize) : source + ((ulong)i * Paging.PageSize);
            if (!TryAcquire(mode, page, write, out _acquired[count]))
            {
                ReleaseAll(count);
                return -1;
            }

            count++;
        }

        Volatile.Write(ref _cachedCount, _frames.Count);
        return count;
    }

    private bool TryAcquire(DmaCacheMode mode, Hva page, bool write, out Acquired acquired)
    {
        if (mode != DmaCacheMode.Off && _frames.TryGetValue(page.Value, out var cached) && (cached.Writable || !write))
        {
            if (mode == DmaCacheMode.Unsafe)
            {
                Interlocked.Increment(ref _hits);
                acquired = new Acquired(page, cached.Pfn, write, Referenced: false);
                return true;
            }

            // A frame whose refcount already reached 0 is being freed: the translation is dead, resolve it again.
            if (_memory.TryGet(cached.Pfn))
            {
                Interlocked.Increment(ref _hits);
                acquired = new Acquired(page, cached.Pfn, write, Referenced: true);
                return true;
            }

            _frames.Remove(page.Value);
        }

        Interlocked.Increment(ref _misses);
        var resolved = _process.GetUserPages(page, write);
        if (!resolved.Succeeded)
        {
            acquired = default;
            return false;
        }

        if (mode != DmaCacheMode.Off)
        {
            _frames[page.Value] = new CachedFrame(resolved.Pfn, resolved.Writable);
        }

        acquired = new Acquired(page, resolved.Pfn, write, Referenced: true);
        return true;
    }

    private void ReleaseAll(int count)
    {
        foreach (ref var page in _acquired.AsSpan(0, count))
        {
            if (page.Referenced)
            {
                _process.ReleasePage(page.Pfn);
            }
        }
    }

    /// <summary>The debug check: pages whose frame is not what the host PTE maps now, and how many of them are free.</summary>
    private int CheckStale(int count, out int free)
    {
        var stale = 0;
        free = 0;
        foreach (ref var page in _acquired.AsSpan(0, count))
        {
            var pte = _process.HasExited ? HostPte.None : _process.PageTable.Read(page.Page);
            page.Stale = !pte.IsPresent || pte.Pfn != page.Pfn;
            if (page.Stale)
            {
                stale++;
                if (_memory.IsFree(page.Pfn))
                {
                    free++;
                }
            }
        }

        return stale;
    }

    /// <summary>
    /// Copies frame to frame, chunk by chunk, then marks the destination frames dirty (<c>set_page_dirty</c> after DMA).
    /// A stale destination frame that became a host page table or reserved frame is not written (counted instead), and
    /// a stale frame the copy holds no reference on is never marked dirty: its flags are no longer this mapping's to set.
    /// </summary>
    private void CopyFrames(DmaCacheMode mode, Hva source, Hva destination, int length, int sourcePages, int count)
    {
        var sourceOffset = (int)(source.Value & (Paging.PageSize - 1));
        var destinationOffset = (int)(destination.Value & (Paging.PageSize - 1));
        var s = 0;
        var d = sourcePages;
        var blocked = 0;
        var remaining = length;
        while (remaining > 0)
        {
            var chunk = Math.Min(remaining, Math.Min((int)Paging.PageSize - sourceOffset, (int)Paging.PageSize - destinationOffset));
            ref var from = ref _acquired[s];
            ref var to = ref _acquired[d];
            if (mode == DmaCacheMode.Unsafe && to.Stale && !Writable(to.Pfn))
            {
                blocked++;
            }
            else
            {
                Buffer.MemoryCopy(_memory.FrameAddress(from.Pfn) + sourceOffset, _memory.FrameAddress(to.Pfn) + destinationOffset, chunk, chunk);
            }

            remaining -= chunk;
            sourceOffset += chunk;
            destinationOffset += chunk;
            if (sourceOffset == (int)Paging.PageSize)
            {
                sourceOffset = 0;
                s++;
            }

            if (destinationOffset == (int)Paging.PageSize)
            {
                destinationOffset = 0;
                d++;
            }
        }

        for (var i = sourcePages; i < count; i++)
        {
            // A referenced frame is still the folio the copy wrote even when the host has unmapped it since (a swap-out
            // between the counter check and the copy): it is marked dirty like any DMA target (set_page_dirty after
            // DMA), so a pageout whose checksum was taken before the copy landed keeps the frame and writes it again
            // instead of freeing it behind a slot whose data no longer matches its checksum. An unreferenced stale frame
            // (the unsafe cache's) may be free or another owner's: its flags are not this copy's to set.
            if (_acquired[i].Referenced || !_acquired[i].Stale)
            {
                _memory.SetFlags(_acquired[i].Pfn, FrameFlags.Dirty);
            }
        }

        if (blocked > 0)
        {
            Interlocked.Add(ref _blockedWrites, blocked);
        }
    }

    /// <summary>Whether a stale write may land in <paramref name="pfn"/>: anything but the host's own page tables and reserved frames.</summary>
    private bool Writable(Pfn pfn)
    {
        if (pfn.Value >= (ulong)_memory.TotalFrames)
        {
            return false;
        }

        var flags = _memory.Frame(pfn).Flags;
        return (flags & (FrameFlags.PageTable | FrameFlags.Reserved)) == 0;
    }

    /// <summary>A cached translation: the frame and whether it was resolved for writing.</summary>
    private readonly record struct CachedFrame(Pfn Pfn, bool Writable);

    /// <summary>One page of the copy in progress: its frame, whether it is written, whether the engine holds a reference, and the debug check's verdict.</summary>
    private record struct Acquired(Hva Page, Pfn Pfn, bool Write, bool Referenced)
    {
        public bool Stale { get; set; }
    }
}
