using System.Globalization;
using Hypervisor.HostMm.Frames;

namespace Hypervisor.HostMm.Swap;

/// <summary>
/// One swap area over one <see cref="ISwapDevice"/> (Linux's <c>swap_info_struct</c>): the per-slot
/// <c>swap_map</c> (map count + HAS_CACHE, or BAD; free ⇔ 0), clusters of <see cref="ClusterSlots"/> slots on
/// free / nonfull / full lists with a per-CPU current cluster, a CRC-32C of every written page, a zero map, and the
/// checked transfers. Slot 0 is the header: BAD, never allocated.
/// </summary>
/// <remarks>
/// <para><b>Slot life (Linux's):</b> <see cref="TryAllocate"/> hands out a slot with HAS_CACHE set and count 0 (the
/// page being swapped out is in the swap cache); each swap PTE installed for it calls <see cref="Duplicate"/>;
/// <see cref="Write"/> stores the page; dropping the page from the swap cache calls <see cref="ClearCache"/>; a
/// swap-in first takes HAS_CACHE with <see cref="TrySetCache"/>, then <see cref="Read"/>s; each swap PTE removed
/// calls <see cref="FreeReference"/>. The slot is free, its checksum forgotten and the device told to discard it,
/// when its word reaches 0.</para>
/// <para><b>Ownership:</b> <see cref="Write"/>, <see cref="WriteRun"/>, <see cref="WriteFrames"/>, <see cref="Read"/>,
/// <see cref="ReadRun"/> and <see cref="ReadFrames"/> require HAS_CACHE set on every slot: the caller owns the slot through its swap-cache page (locked), so transfers
/// of one slot never overlap. Breaking a <c>swap_map</c> rule throws <see cref="SwapSlotStateException"/> (a bug);
/// a slot outside the area throws <see cref="ArgumentOutOfRangeException"/>. I/O failures are results.</para>
/// <para><b>Failures:</b> a failed or corrupted read fills the page with <see cref="PoisonByte"/> and returns
/// <see cref="SwapIoStatus.IoError"/> or <see cref="SwapIoStatus.ChecksumMismatch"/> naming the slot — never wrong
/// data as success. A failed write leaves the slot allocated, its data invalid (a later read throws) and the
/// caller's page untouched; the caller keeps the page resident and dirty in the swap cache and writes it again.</para>
/// <para><b>Locks:</b> a spin lock per cluster guards its slots' words and counts; the list lock guards the cluster
/// lists. Order: cluster lock → list lock; a cluster lock is also held while the device discards a freed slot, so
/// cluster lock → device locks (zram slot lock → zram class lock). Transfers hold no area lock. All of these are
/// leaves for the host: the caller may hold the mmap lock and a frame's page lock when it calls in, but never a
/// page-table lock or the MMU lock (a transfer does I/O and may sleep).</para>
/// </remarks>
public sealed unsafe class SwapArea : IDisposable
{
    /// <summary>Slots per cluster (Linux's <c>SWAPFILE_CLUSTER</c> with THP swap).</summary>
    public const int ClusterSlots = 512;

    /// <summary>Largest map count a slot holds; one more <see cref="Duplicate"/> throws (Linux continues into <c>COUNT_CONTINUED</c> pages instead).</summary>
    public const int MaxMapCount = 0x3FFE;

    /// <summary>The byte a failed or corrupted read leaves in the caller's page.</summary>
    public const byte PoisonByte = 0xA5;

    private const int PageSize = (int)Paging.PageSize;
    private const int ClusterShift = 9;
    private const int None = -1;
    private const int CpuStride = 16; // one 64-byte line per CPU's current-cluster word

    // _check per slot: bits 0..31 the CRC-32C of the stored page, bit 32 the slot holds valid data, bit 33 zero page.
    private const ulong CheckValid = 1UL << 32;
    private const ulong CheckZero = 1UL << 33;

    private readonly ISwapDevice _device;
    private readonly bool _ownsDevice;
    private readonly ushort* _map;
    private readonly ulong* _check;
    private readonly SwapCluster[] _clusters;
    private readonly int[] _cpuCluster;
    private readonly int _cpuMask;
    private readonly Lock _listLock = new();
    private readonly int[] _listHead = [None, None, None];
    private readonly int[] _listTail = [None, None, None];
    private readonly int[] _listCount = new int[3];
    private long _totalSlots;
    private long _freeSlots;
    private long _badSlots;
    private long _allocations;
    private long _allocationFailures;
    private long _slotsFreed;
    private long _pswpout;
    private long _pswpin;
    private long _swpoutZero;
    private long _swpinZero;
    private long _checksumFailures;
    private long _readErrors;
    private long _writeErrors;
    private int _disposed;

    /// <summary>Creates an area over every slot of <paramref name="device"/>, all free but the header.</summary>
    /// <param name="device">The device; its <see cref="ISwapDevice.SlotCount"/> is at most <see cref="SwapOptions.MaxSlots"/>.</param>
    /// <param name="ownsDevice">Whether <see cref="Dispose"/> disposes the device.</param>
    public SwapArea(ISwapDevice device, bool ownsDevice = true)
    {
        ArgumentNullException.ThrowIfNull(device);
        var slots = device.SlotCount;
        if (slots < 2 || slots > SwapOptions.MaxSlots)
        {
            throw new ArgumentOutOfRangeException(
                nameof(device), slots, $"{device.Name} has {slots} slots: a swap area needs 2 to {SwapOptions.MaxSlots}");
        }

        _device = device;
        _ownsDevice = ownsDevice;
        SlotCount = slots;
        _map = (ushort*)NativeMemory.AllocZeroed((nuint)slots, sizeof(ushort));
        _check = (ulong*)NativeMemory.AllocZeroed((nuint)slots, sizeof(ulong));
        _map[0] = SwapSlotUsage.BadWord;

        var clusterCount = (int)((slots + ClusterSlots - 1) / ClusterSlots);
        _clusters = new SwapCluster[clusterCount];
        for (var c = 0; c < clusterCount; c++)
        {
            var size = (int)Math.Min(ClusterSlots, slots - ((ulong)c * ClusterSlots));
            _clusters[c] = new SwapCluster { Size = size, Usable = c == 0 ? size - 1 : size, Prev = None, Next = None };
            var list = _clusters[c].Usable == 0 ? SwapClusterList.Full : SwapClusterList.Free;
            _clusters[c].List = list;
            PushTail(c, list);
        }

        var cpus = (int)BitOperations.RoundUpToPowerOf2((uint)Math.Max(1, Environment.ProcessorCount));
        _cpuMask = cpus - 1;
        _cpuCluster = new int[cpus * CpuStride];
        for (var i = 0; i < cpus; i++)
        {
            _cpuCluster[i * CpuStride] = None;
        }

        _totalSlots = (long)slots - 1;
        _freeSlots = _totalSlots;
    }

    /// <summary>The device behind the area.</summary>
    public ISwapDevice Device => _device;

    /// <summary>Slots on the device, header included (<c>si->max</c>): data slots are 1 to <c>SlotCount − 1</c>.</summary>
    public ulong SlotCount { get; }

    /// <summary>Slots that can hold a page: all but the header and BAD ones (<c>SwapTotal</c> in pages).</summary>
    public long TotalSlots => Volatile.Read(ref _totalSlots);

    /// <summary>Slots not allocated (<c>SwapFree</c> in pages).</summary>
    public long FreeSlots => Volatile.Read(ref _freeSlots);

    /// <summary>True when more than half the slots are in use (Linux's <c>vm_swap_full()</c>): reclaim then frees a swapped-in page's slot at once.</summary>
    public bool VmSwapFull => FreeSlots * 2 < TotalSlots;

    /// <summary>
    /// Allocates one slot for a page entering the swap cache: its word becomes HAS_CACHE with count 0. Taken from
    /// this CPU's current cluster, else the first non-full cluster, else a free one. False when swap is full.
    /// </summary>
    public bool TryAllocate(out ulong slot)
    {
        ulong one = 0;
        var got = AllocateBatch(new Span<ulong>(ref one));
        slot = one;
        return got == 1;
    }

    /// <summary>
    /// Allocates up to <c>slots.Length</c> slots as <see cref="TryAllocate"/> does, in ascending order within a
    /// cluster, so consecutive entries are usually contiguous slots (a run for <see cref="WriteRun"/>). Returns
    /// how many were allocated; fewer than asked means swap is full.
    /// </summary>
    public int AllocateBatch(Span<ulong> slots)
    {
        ObjectDisposedException.ThrowIf(_disposed != 0, this);
        var filled = 0;
        var cpu = (Thread.GetCurrentProcessorId() & _cpuMask) * CpuStride;
        while (filled < slots.Length)
        {
            var c = Volatile.Read(ref _cpuCluster[cpu]);
            if (c != None)
            {
                filled += AllocateInCluster(c, slots[filled..], cpu);
                if (filled == slots.Length)
                {
                    break;
                }
            }

            c = PickCluster();
            if (c == None)
            {
                Interlocked.Increment(ref _allocationFailures);
                break;
            }

            Volatile.Write(ref _cpuCluster[cpu], c);
        }

        if (filled > 0)
        {
            Interlocked.Add(ref _allocations, filled);
            Interlocked.Add(ref _freeSlots, -filled);
        }

        return filled;
    }

    /// <summary>Adds one map reference (a swap PTE now points at the slot; Linux's <c>swap_duplicate</c>). The slot must be allocated.</summary>
    /// <exception cref="SwapSlotStateException">The slot is free or BAD, or its count is already <see cref="MaxMapCount"/>.</exception>
    public void Duplicate(ulong slot)
    {
        ref var cluster = ref LockClusterOf(slot);
        try
        {
            var word = _map[slot];
            if (word == 0 || word == SwapSlotUsage.BadWord)
            {
                throw Broken(slot, word, "cannot take a map reference: the slot is not allocated");
            }

            if ((word & SwapSlotUsage.CountMask) >= MaxMapCount)
            {
                throw Broken(slot, word, $"map count overflow: a slot holds at most {MaxMapCount} references");
            }

            _map[slot] = (ushort)(word + 1);
        }
        finally
        {
            Unlock(ref cluster);
        }
    }

    /// <summary>
    /// Drops one map reference (a swap PTE pointing at the slot went away; Linux's <c>swap_free</c>). Returns true
    /// when that freed the slot (count 0 and no HAS_CACHE).
    /// </summary>
    /// <exception cref="SwapSlotStateException">The slot has no map reference (free, BAD, or HAS_CACHE alone).</exception>
    public bool FreeReference(ulong slot)
    {
        ref var cluster = ref LockClusterOf(slot);
        try
        {
            var word = _map[slot];
            if (word == SwapSlotUsage.BadWord || (word & SwapSlotUsage.CountMask) == 0)
            {
                throw Broken(slot, word, "cannot drop a map reference: the slot has none");
            }

            return Store(ref cluster, slot, (ushort)(word - 1));
        }
        finally
        {
            Unlock(ref cluster);
        }
    }

    /// <summary>
    /// Takes HAS_CACHE before reading a slot into a new swap-cache page (Linux's <c>swapcache_prepare</c>; the
    /// flag doubles as the lock that keeps two faults from reading the same slot in).
    /// </summary>
    /// <exception cref="SwapSlotStateException">The slot is BAD.</exception>
    public SwapCachePrepareResult TrySetCache(ulong slot)
    {
        ref var cluster = ref LockClusterOf(slot);
        try
        {
            var word = _map[slot];
            if (word == 0)
            {
                return SwapCachePrepareResult.SlotFree;
            }

            if (word == SwapSlotUsage.BadWord)
            {
                throw Broken(slot, word, "cannot cache a BAD slot");
            }

            if ((word & SwapSlotUsage.HasCacheFlag) != 0)
            {
                return SwapCachePrepareResult.AlreadyCached;
            }

            _map[slot] = (ushort)(word | SwapSlotUsage.HasCacheFlag);
            return SwapCachePrepareResult.Prepared;
        }
        finally
        {
            Unlock(ref cluster);
        }
    }

    /// <summary>
    /// Drops HAS_CACHE (the slot's page left the swap cache, or a read-in was abandoned; Linux's
    /// <c>put_swap_folio</c>/<c>swapcache_clear</c>). Returns true when that freed the slot (count 0).
    /// </summary>
    /// <exception cref="SwapSlotStateException">HAS_CACHE is not set.</exception>
    public bool ClearCache(ulong slot)
    {
        ref var cluster = ref LockClusterOf(slot);
        try
        {
            var word = _map[slot];
            if (word == SwapSlotUsage.BadWord || (word & SwapSlotUsage.HasCacheFlag) == 0)
            {
                throw Broken(slot, word, "cannot clear HAS_CACHE: it is not set");
            }

            return Store(ref cluster, slot, (ushort)(word & ~SwapSlotUsage.HasCacheFlag));
        }
        finally
        {
            Unlock(ref cluster);
        }
    }

    /// <summary>The slot's word now (a lock-free snapshot; it may change as soon as it is read). Slot 0 reads as BAD.</summary>
    public SwapSlotUsage GetUsage(ulong slot)
    {
        ObjectDisposedException.ThrowIf(_disposed != 0, this);
        if (slot != 0)
        {
            CheckSlot(slot);
        }

        return new SwapSlotUsage(Volatile.Read(ref _map[slot]));
    }

    /// <summary>Marks a free slot BAD: it is never allocated again and leaves <see cref="TotalSlots"/>.</summary>
    /// <exception cref="SwapSlotStateException">The slot is not free.</exception>
    public void MarkBad(ulong slot)
    {
        ref var cluster = ref LockClusterOf(slot);
        try
        {
            var word = _map[slot];
            if (word != 0)
            {
                throw Broken(slot, word, "only a free slot can be marked BAD");
            }

            _map[slot] = SwapSlotUsage.BadWord;
            cluster.Usable--;
            Interlocked.Decrement(ref _totalSlots);
            Interlocked.Decrement(ref _freeSlots);
            Interlocked.Increment(ref _badSlots);
            Relocate((int)(slot >> ClusterShift), ref cluster);
        }
        finally
        {
            Unlock(ref cluster);
        }
    }

    /// <summary>
    /// Writes <paramref name="page"/> (4096 bytes) to <paramref name="slot"/> and records its CRC-32C; an all-zero
    /// page is only recorded in the zero map (<c>swpout_zero</c>), with no I/O. On failure the slot stays allocated
    /// and holds no data; <paramref name="page"/> is never modified.
    /// </summary>
    /// <exception cref="SwapSlotStateException">The slot does not have HAS_CACHE set.</exception>
    public SwapIoResult Write(ulong slot, ReadOnlySpan<byte> page)
    {
        CheckBuffer(page.Length, 1);
        CheckOwned(slot, "write");
        if (IsZero(page))
        {
            _check[slot] = CheckValid | CheckZero;
            _device.Discard(slot);
            Interlocked.Increment(ref _swpoutZero);
            return SwapIoResult.Success;
        }

        // As in WriteCore: the checksum is taken after the device's copy, from the page it left in the cache.
        _check[slot] = 0;
        var result = _device.Write(slot, page);
        if (!result.IsOk)
        {
            Interlocked.Increment(ref _writeErrors);
            return result;
        }

        _check[slot] = CheckValid | Crc32C.Compute(page);
        Interlocked.Increment(ref _pswpout);
        return result;
    }

    /// <summary>
    /// Writes <paramref name="pages"/> (a positive multiple of 4096 bytes) to the contiguous slots from
    /// <paramref name="firstSlot"/>: the non-zero pages between zero pages go to the device in one call each. On
    /// failure the result names the first slot not written; the slots before it hold their pages, it and the slots
    /// after it hold no data.
    /// </summary>
    /// <exception cref="SwapSlotStateException">A slot of the run does not have HAS_CACHE set.</exception>
    public SwapIoResult WriteRun(ulong firstSlot, ReadOnlySpan<byte> pages)
    {
        CheckBuffer(pages.Length, 0);

        // The run only reads its buffer on a write: the read-only span is never written through.
        return WriteCore(firstSlot, new BufferPageRun(MemoryMarshal.CreateSpan(ref MemoryMarshal.GetReference(pages), pages.Length)));
    }

    /// <summary>
    /// <see cref="WriteRun"/> straight from frames: page <c>i</c> is the 4096 bytes of native memory at
    /// <c>pages[i]</c> (a frame of the host arena, locked in the swap cache by the caller, so it cannot change). The
    /// CRC-32C is taken from the frame; each run of non-zero pages is one gathered device call
    /// (<see cref="IVectoredSwapDevice.WriteGather"/>: on a Linux file one <c>pwritev</c> pointing at the frames),
    /// or on a device without it one plain run through a bounce buffer. Results as <see cref="WriteRun"/>.
    /// </summary>
    /// <exception cref="SwapSlotStateException">A slot of the run does not have HAS_CACHE set.</exception>
    /// <exception cref="ArgumentException"><paramref name="pages"/> is empty or holds a null address.</exception>
    public SwapIoResult WriteFrames(ulong firstSlot, ReadOnlySpan<nint> pages)
    {
        CheckFrames(pages, firstSlot);
        return WriteCore(firstSlot, new FramePageRun(pages));
    }

    private SwapIoResult WriteCore<TRun>(ulong firstSlot, TRun pages)
        where TRun : ISwapPageRun, allows ref struct
    {
        var count = pages.Count;
        CheckRunSlots(firstSlot, count);
        for (var i = 0; i < count; i++)
        {
            CheckOwned(firstSlot + (ulong)i, "write");
        }

        new Span<ulong>(_check + firstSlot, count).Clear();

        var start = 0;
        while (start < count)
        {
            var page = pages.Page(start);
            if (IsZero(page))
            {
                _check[firstSlot + (ulong)start] = CheckValid | CheckZero;
                _device.Discard(firstSlot + (ulong)start);
                Interlocked.Increment(ref _swpoutZero);
                start++;
                continue;
            }

            var end = start + 1;
            while (end < count && !IsZero(pages.Page(end)))
            {
                end++;
            }

            // The CRC-32C is taken after the device call, from the same bytes: the device's copy has just brought them
            // into the cache, so the checksum reads them from there instead of being the first, cache-missing pass over
            // cold pages. Frames are locked, unmapped swap-cache pages (or the caller's buffer); only a holder of a
            // get-user-pages reference can still write one, and that write marks the frame dirty while its reference
            // blocks the free, so reclaim keeps the page and rewrites the slot before any fault reads it — the same as
            // when the checksum came first. The check word stays 0 (no valid bit) until the device holds the page; a
            // failed page gets none.
            var result = pages.Write(_device, firstSlot + (ulong)start, start, end);
            var written = result.IsOk ? end : (int)(result.Slot - firstSlot);
            for (var i = start; i < written; i++)
            {
                _check[firstSlot + (ulong)i] = CheckValid | Crc32C.Compute(pages.Page(i));
            }

            Interlocked.Add(ref _pswpout, written - start);
            if (!result.IsOk)
            {
                Interlocked.Increment(ref _writeErrors);
                return result;
            }

            start = end;
        }

        return SwapIoResult.Success;
    }

    /// <summary>
    /// How many of the <paramref name="count"/> slots from <paramref name="firstSlot"/> hold a zero-filled page, which the
    /// area keeps in its check words without device I/O (for traces; the caller owns the slots, as for a read or write).
    /// </summary>
    public int CountSameFilled(ulong firstSlot, int count)
    {
        CheckRunSlots(firstSlot, count);
        var sameFilled = 0;
        for (var i = 0; i < count; i++)
        {
            sameFilled += (_check[firstSlot + (ulong)i] & (CheckValid | CheckZero)) == (CheckValid | CheckZero) ? 1 : 0;
        }

        return sameFilled;
    }

    /// <summary>
    /// Reads <paramref name="slot"/> into <paramref name="page"/> (4096 bytes) and verifies its CRC-32C. A device
    /// error returns <see cref="SwapIoStatus.IoError"/>, a mismatch <see cref="SwapIoStatus.ChecksumMismatch"/>, both
    /// naming the slot with <paramref name="page"/> filled with <see cref="PoisonByte"/>.
    /// </summary>
    /// <exception cref="SwapSlotStateException">The slot does not have HAS_CACHE set, or holds no data (never written, or its last write failed).</exception>
    public SwapIoResult Read(ulong slot, Span<byte> page)
    {
        CheckBuffer(page.Length, 1);
        return ReadRun(slot, page);
    }

    /// <summary>
    /// Reads the contiguous slots from <paramref name="firstSlot"/> into <paramref name="pages"/> in one device call
    /// (zero-map pages are filled, not read) and verifies each page. On failure the result names the first slot that
    /// failed; the pages before it are good, it and the pages after it are filled with <see cref="PoisonByte"/>.
    /// </summary>
    /// <exception cref="SwapSlotStateException">A slot of the run does not have HAS_CACHE set or holds no data.</exception>
    public SwapIoResult ReadRun(ulong firstSlot, Span<byte> pages)
    {
        CheckBuffer(pages.Length, 0);
        return ReadCore(firstSlot, new BufferPageRun(pages));
    }

    /// <summary>
    /// <see cref="ReadRun"/> straight into frames: page <c>i</c> is the 4096 bytes of native memory at
    /// <c>pages[i]</c> (a new swap-cache frame the caller holds locked). The non-zero slots are one gathered device
    /// call (<see cref="IVectoredSwapDevice.ReadScatter"/>: on a Linux file one <c>preadv</c> into the frames), or on a
    /// device without it one plain run through a bounce buffer; each page's CRC-32C is then verified in its frame.
    /// Results as <see cref="ReadRun"/>: a failed frame and every frame after it hold <see cref="PoisonByte"/>.
    /// </summary>
    /// <exception cref="SwapSlotStateException">A slot of the run does not have HAS_CACHE set or holds no data.</exception>
    /// <exception cref="ArgumentException"><paramref name="pages"/> is empty or holds a null address.</exception>
    public SwapIoResult ReadFrames(ulong firstSlot, ReadOnlySpan<nint> pages)
    {
        CheckFrames(pages, firstSlot);
        return ReadCore(firstSlot, new FramePageRun(pages));
    }

    private SwapIoResult ReadCore<TRun>(ulong firstSlot, TRun pages)
        where TRun : ISwapPageRun, allows ref struct
    {
        var count = pages.Count;
        CheckRunSlots(firstSlot, count);
        int first = None, last = None;
        for (var i = 0; i < count; i++)
        {
            var slot = firstSlot + (ulong)i;
            CheckOwned(slot, "read");
            var check = _check[slot];
            if ((check & CheckValid) == 0)
            {
                throw Broken(slot, _map[slot], "cannot read the slot: it holds no data (never written, or its last write failed)");
            }

            if ((check & CheckZero) == 0)
            {
                first = first == None ? i : first;
                last = i;
            }
        }

        var failAt = count;
        var failure = SwapIoResult.Success;
        if (first != None)
        {
            var result = pages.Read(_device, firstSlot + (ulong)first, first, last + 1);
            if (!result.IsOk)
            {
                failAt = (int)(result.Slot - firstSlot);
                failure = result;
                Interlocked.Increment(ref _readErrors);
            }
        }

        int zero = 0, verified = 0;
        for (var i = 0; i < failAt; i++)
        {
            var slot = firstSlot + (ulong)i;
            var page = pages.Page(i);
            var check = _check[slot];
            if ((check & CheckZero) != 0)
            {
                page.Clear();
                zero++;
            }
            else if (Crc32C.Compute(page) != (uint)check)
            {
                failAt = i;
                failure = SwapIoResult.Failed(SwapIoStatus.ChecksumMismatch, slot);
                Interlocked.Increment(ref _checksumFailures);
                break;
            }
            else
            {
                verified++;
            }
        }

        Interlocked.Add(ref _swpinZero, zero);
        Interlocked.Add(ref _pswpin, verified);

        for (var i = failAt; i < count; i++)
        {
            pages.Page(i).Fill(PoisonByte);
        }

        return failure;
    }

    /// <summary>A snapshot of totals, cluster lists and counters.</summary>
    public SwapAreaStats GetStats()
    {
        int free, nonFull, full;
        lock (_listLock)
        {
            free = _listCount[(int)SwapClusterList.Free];
            nonFull = _listCount[(int)SwapClusterList.NonFull];
            full = _listCount[(int)SwapClusterList.Full];
        }

        return new SwapAreaStats
        {
            TotalSlots = TotalSlots,
            FreeSlots = FreeSlots,
            BadSlots = Volatile.Read(ref _badSlots),
            FreeClusters = free,
            NonFullClusters = nonFull,
            FullClusters = full,
            Allocations = Volatile.Read(ref _allocations),
            AllocationFailures = Volatile.Read(ref _allocationFailures),
            SlotsFreed = Volatile.Read(ref _slotsFreed),
            Pswpout = Volatile.Read(ref _pswpout),
            Pswpin = Volatile.Read(ref _pswpin),
            SwpoutZero = Volatile.Read(ref _swpoutZero),
            SwpinZero = Volatile.Read(ref _swpinZero),
            ChecksumFailures = Volatile.Read(ref _checksumFailures),
            ReadErrors = Volatile.Read(ref _readErrors),
            WriteErrors = Volatile.Read(ref _writeErrors),
        };
    }

    /// <summary>
    /// Checks every cluster against its slots' words (used and usable counts, list membership) and the free-slot
    /// total; returns the first mismatch, or null. For tests and audits: take it only while the area is quiescent.
    /// </summary>
    public string? Audit()
    {
        long free = 0;
        for (var c = 0; c < _clusters.Length; c++)
        {
            ref var cluster = ref _clusters[c];
            int used = 0, bad = 0;
            for (var i = 0; i < cluster.Size; i++)
            {
                var word = _map[((ulong)c << ClusterShift) + (ulong)i];
                if (word == SwapSlotUsage.BadWord)
                {
                    bad++;
                }
                else if (word != 0)
                {
                    used++;
                }
            }

            var list = used == cluster.Size - bad ? SwapClusterList.Full : used == 0 ? SwapClusterList.Free : SwapClusterList.NonFull;
            if (used != cluster.Used || cluster.Size - bad != cluster.Usable || list != cluster.List)
            {
                return string.Create(
                    CultureInfo.InvariantCulture,
                    $"cluster {c}: {used} used / {cluster.Size - bad} usable slots in swap_map, but counted {cluster.Used} / {cluster.Usable} and listed {cluster.List} (expected {list})");
            }

            free += cluster.Usable - cluster.Used;
        }

        return free == FreeSlots ? null : $"{free} free slots in swap_map but FreeSlots is {FreeSlots}";
    }

    /// <summary>Frees the area's tables and, when it owns it, the device. The area must not be in use.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        NativeMemory.Free(_map);
        NativeMemory.Free(_check);
        if (_ownsDevice)
        {
            _device.Dispose();
        }
    }

    /// <inheritdoc />
    public override string ToString() =>
        string.Create(CultureInfo.InvariantCulture, $"swap area on {_device.Name}: {FreeSlots} of {TotalSlots} slots free");

    private static bool IsZero(ReadOnlySpan<byte> page) => !page.ContainsAnyExcept((byte)0);

    private static SwapSlotStateException Broken(ulong slot, ushort word, string rule) =>
        new(slot, word, string.Create(CultureInfo.InvariantCulture, $"swap slot 0x{slot:x} ({new SwapSlotUsage(word)}): {rule}"));

    /// <summary>Hands out up to <c>dest.Length</c> free slots of cluster <paramref name="c"/>; returns how many.</summary>
    private int AllocateInCluster(int c, Span<ulong> dest, int cpu)
    {
        ref var cluster = ref _clusters[c];
        LockCluster(ref cluster);
        var n = 0;
        try
        {
            var baseSlot = (ulong)c << ClusterShift;
            var words = new Span<ushort>(_map + baseSlot, cluster.Size);
            var hint = cluster.Hint;
            while (n < dest.Length && cluster.Used < cluster.Usable)
            {
                var i = words[hint..].IndexOf((ushort)0);
                if (i >= 0)
                {
                    i += hint;
                }
                else
                {
                    i = words[..hint].IndexOf((ushort)0);
                    if (i < 0)
                    {
                        throw new SwapSlotStateException(baseSlot, 0, string.Create(
                            CultureInfo.InvariantCulture, $"swap cluster {c} counts {cluster.Used} of {cluster.Usable} slots used but swap_map has no free slot"));
                    }
                }

                words[i] = SwapSlotUsage.HasCacheFlag;
                cluster.Used++;
                dest[n++] = baseSlot + (ulong)i;
                hint = i + 1 == cluster.Size ? 0 : i + 1;
            }

            cluster.Hint = hint;
            if (cluster.Used == cluster.Usable)
            {
                Interlocked.CompareExchange(ref _cpuCluster[cpu], None, c);
            }

            Relocate(c, ref cluster);
        }
        finally
        {
            Unlock(ref cluster);
        }

        return n;
    }

    /// <summary>The cluster to allocate from next: the first non-full one, else the first free one, else none.</summary>
    private int PickCluster()
    {
        lock (_listLock)
        {
            var c = _listHead[(int)SwapClusterList.NonFull];
            return c != None ? c : _listHead[(int)SwapClusterList.Free];
        }
    }

    /// <summary>Writes a slot's new word under its cluster lock; frees the slot when the word is 0. Returns whether it freed it.</summary>
    private bool Store(ref SwapCluster cluster, ulong slot, ushort word)
    {
        _map[slot] = word;
        if (word != 0)
        {
            return false;
        }

        _check[slot] = 0;
        cluster.Used--;
        Interlocked.Increment(ref _freeSlots);
        Interlocked.Increment(ref _slotsFreed);
        Relocate((int)(slot >> ClusterShift), ref cluster);

        // Under the cluster lock, so the slot cannot be reallocated and rewritten before its old data is discarded.
        _device.Discard(slot);
        return true;
    }

    /// <summary>Moves cluster <paramref name="c"/> to the list its counts call for. Caller holds its cluster lock.</summary>
    private void Relocate(int c, ref SwapCluster cluster)
    {
        var target = cluster.Used == cluster.Usable ? SwapClusterList.Full
            : cluster.Used == 0 ? SwapClusterList.Free
            : SwapClusterList.NonFull;
        if (target == cluster.List)
        {
            return;
        }

        lock (_listLock)
        {
            Unlink(c, cluster.List);
            PushTail(c, target);
            cluster.List = target;
        }
    }

    /// <summary>Appends cluster <paramref name="c"/> to <paramref name="list"/>. Caller holds the list lock (or is the constructor).</summary>
    private void PushTail(int c, SwapClusterList list)
    {
        ref var cluster = ref _clusters[c];
        var l = (int)list;
        cluster.Prev = _listTail[l];
        cluster.Next = None;
        if (_listTail[l] != None)
        {
            _clusters[_listTail[l]].Next = c;
        }
        else
        {
            _listHead[l] = c;
        }

        _listTail[l] = c;
        _listCount[l]++;
    }

    /// <summary>Removes cluster <paramref name="c"/> from <paramref name="list"/>. Caller holds the list lock.</summary>
    private void Unlink(int c, SwapClusterList list)
    {
        ref var cluster = ref _clusters[c];
        var l = (int)list;
        if (cluster.Prev != None)
        {
            _clusters[cluster.Prev].Next = cluster.Next;
        }
        else
        {
            _listHead[l] = cluster.Next;
        }

        if (cluster.Next != None)
        {
            _clusters[cluster.Next].Prev = cluster.Prev;
        }
        else
        {
            _listTail[l] = cluster.Prev;
        }

        cluster.Prev = None;
        cluster.Next = None;
        _listCount[l]--;
    }

    private ref SwapCluster LockClusterOf(ulong slot)
    {
        CheckSlot(slot);
        ref var cluster = ref _clusters[(int)(slot >> ClusterShift)];
        LockCluster(ref cluster);
        return ref cluster;
    }

    private static void LockCluster(ref SwapCluster cluster)
    {
        if (Interlocked.CompareExchange(ref cluster.Lock, 1, 0) == 0)
        {
            return;
        }

        var spin = default(SpinWait);
        do
        {
            spin.SpinOnce();
        }
        while (Volatile.Read(ref cluster.Lock) != 0 || Interlocked.CompareExchange(ref cluster.Lock, 1, 0) != 0);
    }

    private static void Unlock(ref SwapCluster cluster) => Volatile.Write(ref cluster.Lock, 0);

    private void CheckSlot(ulong slot)
    {
        ObjectDisposedException.ThrowIf(_disposed != 0, this);
        if (slot == 0 || slot >= SlotCount)
        {
            throw new ArgumentOutOfRangeException(
                nameof(slot), slot,
                string.Create(CultureInfo.InvariantCulture, $"swap slot 0x{slot:x} is outside {_device.Name}: data slots are 1 to 0x{SlotCount - 1:x} (slot 0 is the header)"));
        }
    }

    private void CheckRunSlots(ulong firstSlot, int count)
    {
        CheckSlot(firstSlot);
        if ((ulong)count > SlotCount - firstSlot)
        {
            throw new ArgumentOutOfRangeException(
                nameof(firstSlot), firstSlot,
                string.Create(CultureInfo.InvariantCulture, $"swap run [0x{firstSlot:x}, +{count}) runs past the end of {_device.Name} (0x{SlotCount:x} slots)"));
        }
    }

    private void CheckOwned(ulong slot, string operation)
    {
        CheckSlot(slot);
        var word = Volatile.Read(ref _map[slot]);
        if (word == SwapSlotUsage.BadWord || (word & SwapSlotUsage.HasCacheFlag) == 0)
        {
            throw Broken(slot, word, $"cannot {operation} the slot: the caller must own it through the swap cache (HAS_CACHE set)");
        }
    }

    /// <summary>Checks the page addresses of a frame transfer: at least one, none null.</summary>
    private static void CheckFrames(ReadOnlySpan<nint> pages, ulong firstSlot)
    {
        if (pages.IsEmpty || pages.Contains(0))
        {
            throw new ArgumentException(
                string.Create(CultureInfo.InvariantCulture, $"frame transfer at swap slot 0x{firstSlot:x} with {pages.Length} page addresses, {(pages.IsEmpty ? "none" : "one of them 0")}: a run has at least one page and every page is 4096 bytes of native memory"),
                nameof(pages));
        }
    }

    /// <summary>Checks a transfer buffer: exactly <paramref name="pages"/> pages, or (0) any positive number of whole pages. Returns the page count.</summary>
    private static int CheckBuffer(int length, int pages)
    {
        var ok = pages == 0 ? length > 0 && length % PageSize == 0 : length == pages * PageSize;
        if (!ok)
        {
            throw new ArgumentException(
                string.Create(CultureInfo.InvariantCulture, $"swap buffer of {length} bytes: a page is exactly {PageSize} bytes and a run a positive multiple of it"),
                pages == 1 ? "page" : "pages");
        }

        return length / PageSize;
    }
}
