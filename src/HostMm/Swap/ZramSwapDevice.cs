using System.Globalization;
using K4os.Compression.LZ4;

namespace Hypervisor.HostMm.Swap;

/// <summary>
/// A compressed in-memory swap device in the style of Linux's zram. A written page is stored as one of: its value,
/// when all its 8-byte words are equal (zram's same-filled pages, no memory); LZ4 (K4os, fast level) when that is
/// shorter than <see cref="IncompressibleThreshold"/>; else raw. Stored bytes live in a zsmalloc-like native pool of
/// size classes; an overwrite or <see cref="Discard"/> frees them. An unwritten or discarded slot reads as zeros.
/// Synchronous: every transfer completes in the calling thread. Gathered transfers (<see cref="IVectoredSwapDevice"/>)
/// compress from and decompress into each frame where it is, with no bounce buffer.
/// </summary>
/// <remarks>
/// <para>Locks, in order: a per-slot spin bit (zram's <c>ZRAM_LOCK</c>) → the pool's per-class lock. Both are
/// leaves below every caller; compression runs before the slot lock is taken, decompression under it.</para>
/// <para>Per-slot entries live in one native table of 16-byte <c>ZramEntry</c>s: no managed object per page.</para>
/// </remarks>
public sealed unsafe class ZramSwapDevice : IVectoredSwapDevice
{
    /// <summary>Default threshold: a page that does not compress to below 3072 bytes (¾ page) is stored raw.</summary>
    public const int DefaultIncompressibleThreshold = 3072;

    /// <summary>Smallest threshold accepted.</summary>
    public const int MinIncompressibleThreshold = 64;

    private const int PageSize = (int)Paging.PageSize;
    private const int LockBit = 1 << 31;
    private const int KindShift = 16;
    private const int KindMask = 0xFF << KindShift;
    private const int LengthMask = 0xFFFF;
    private const int KindEmpty = 0;
    private const int KindSame = 1;
    private const int KindCompressed = 2;
    private const int KindRaw = 3;

    private readonly ZramEntry* _table;
    private readonly ZsPool _pool = new();
    private long _pagesStored;
    private long _sameFilled;
    private long _incompressible;
    private long _compressedBytes;
    private long _pagesRead;
    private long _pagesWritten;
    private long _readCalls;
    private long _writeCalls;
    private long _pagesDiscarded;
    private long _readErrors;
    private int _disposed;

    /// <summary>Creates a device of <paramref name="sizeBytes"/> (its disksize; memory is used only for what is stored).</summary>
    /// <param name="sizeBytes">Size in bytes, header slot included (see <see cref="SwapOptions.SizeBytes"/>).</param>
    /// <param name="incompressibleThreshold">Pages that do not compress below this many bytes are stored raw; <see cref="MinIncompressibleThreshold"/> to 4096.</param>
    /// <exception cref="SwapConfigurationException">The size or the threshold breaks a rule.</exception>
    public ZramSwapDevice(ulong sizeBytes, int incompressibleThreshold = DefaultIncompressibleThreshold)
    {
        SlotCount = SwapOptions.ValidateSize(sizeBytes, nameof(sizeBytes));
        ValidateThreshold(incompressibleThreshold, nameof(incompressibleThreshold));
        IncompressibleThreshold = incompressibleThreshold;
        _table = (ZramEntry*)NativeMemory.AllocZeroed((nuint)SlotCount, (nuint)sizeof(ZramEntry));
    }

    /// <summary>Compressed pages must be shorter than this many bytes; longer ones are stored raw.</summary>
    public int IncompressibleThreshold { get; }

    /// <inheritdoc />
    public ulong SlotCount { get; }

    /// <inheritdoc />
    public bool IsSynchronous => true;

    /// <inheritdoc />
    public string Name => "zram";

    /// <inheritdoc />
    public SwapIoResult Read(ulong slot, Span<byte> page)
    {
        SwapDeviceGuard.CheckPage(this, slot, page.Length);
        Interlocked.Increment(ref _readCalls);
        return ReadOne(slot, page);
    }

    /// <inheritdoc />
    public SwapIoResult Write(ulong slot, ReadOnlySpan<byte> page)
    {
        SwapDeviceGuard.CheckPage(this, slot, page.Length);
        Interlocked.Increment(ref _writeCalls);
        WriteOne(slot, page);
        return SwapIoResult.Success;
    }

    /// <inheritdoc />
    public SwapIoResult ReadRun(ulong firstSlot, Span<byte> pages)
    {
        var count = SwapDeviceGuard.CheckRun(this, firstSlot, pages.Length);
        Interlocked.Increment(ref _readCalls);
        for (var i = 0; i < count; i++)
        {
            var result = ReadOne(firstSlot + (ulong)i, pages.Slice(i * PageSize, PageSize));
            if (!result.IsOk)
            {
                return result;
            }
        }

        return SwapIoResult.Success;
    }

    /// <inheritdoc />
    public SwapIoResult WriteRun(ulong firstSlot, ReadOnlySpan<byte> pages)
    {
        var count = SwapDeviceGuard.CheckRun(this, firstSlot, pages.Length);
        Interlocked.Increment(ref _writeCalls);
        for (var i = 0; i < count; i++)
        {
            WriteOne(firstSlot + (ulong)i, pages.Slice(i * PageSize, PageSize));
        }

        return SwapIoResult.Success;
    }

    /// <inheritdoc />
    public SwapIoResult ReadScatter(ulong firstSlot, ReadOnlySpan<nint> pages)
    {
        var count = SwapGather.Check(this, firstSlot, pages);
        Interlocked.Increment(ref _readCalls);
        for (var i = 0; i < count; i++)
        {
            var result = ReadOne(firstSlot + (ulong)i, new Span<byte>((void*)pages[i], PageSize));
            if (!result.IsOk)
            {
                return result;
            }
        }

        return SwapIoResult.Success;
    }

    /// <inheritdoc />
    public SwapIoResult WriteGather(ulong firstSlot, ReadOnlySpan<nint> pages)
    {
        var count = SwapGather.Check(this, firstSlot, pages);
        Interlocked.Increment(ref _writeCalls);
        for (var i = 0; i < count; i++)
        {
            WriteOne(firstSlot + (ulong)i, new ReadOnlySpan<byte>((void*)pages[i], PageSize));
        }

        return SwapIoResult.Success;
    }

    /// <inheritdoc />
    /// <remarks>Frees the slots' stored bytes; they read as zeros afterwards.</remarks>
    public void Discard(ulong firstSlot, int count = 1)
    {
        SwapDeviceGuard.CheckSlots(this, firstSlot, count);
        for (var i = 0; i < count; i++)
        {
            ref var entry = ref _table[firstSlot + (ulong)i];
            LockSlot(ref entry);
            FreeStored(ref entry);
            UnlockSlot(ref entry, KindEmpty, 0);
        }

        Interlocked.Add(ref _pagesDiscarded, count);
    }

    /// <inheritdoc />
    public SwapDeviceStats GetStats() => new()
    {
        PagesRead = Volatile.Read(ref _pagesRead),
        PagesWritten = Volatile.Read(ref _pagesWritten),
        ReadCalls = Volatile.Read(ref _readCalls),
        WriteCalls = Volatile.Read(ref _writeCalls),
        PagesDiscarded = Volatile.Read(ref _pagesDiscarded),
        ReadErrors = Volatile.Read(ref _readErrors),
    };

    /// <summary>A snapshot of what is stored and the memory it takes.</summary>
    public ZramStats GetZramStats()
    {
        var stored = Volatile.Read(ref _pagesStored);
        return new ZramStats
        {
            PagesStored = stored,
            SameFilledPages = Volatile.Read(ref _sameFilled),
            IncompressiblePages = Volatile.Read(ref _incompressible),
            CompressedBytes = Volatile.Read(ref _compressedBytes),
            OriginalBytes = stored * PageSize,
            MemoryUsedBytes = _pool.MemoryUsed,
            TableBytes = (long)SlotCount * sizeof(ZramEntry),
        };
    }

    /// <summary>Frees the table and every stored page. Idempotent; the device must not be in use.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        _pool.Dispose();
        NativeMemory.Free(_table);
    }

    /// <inheritdoc />
    public override string ToString() => Name;

    /// <summary>Checks a threshold against its bounds.</summary>
    internal static void ValidateThreshold(int threshold, string paramName)
    {
        if (threshold < MinIncompressibleThreshold || threshold > PageSize)
        {
            throw new SwapConfigurationException(
                SwapRule.ZramThresholdOutOfRange,
                string.Create(CultureInfo.InvariantCulture, $"zram incompressible threshold {threshold} bytes is out of range: it must be {MinIncompressibleThreshold} to {PageSize} bytes"),
                paramName);
        }
    }

    /// <summary>True when every 8-byte word of <paramref name="page"/> equals the first, which is returned in <paramref name="value"/>.</summary>
    internal static bool IsSameFilled(ReadOnlySpan<byte> page, out ulong value)
    {
        var words = MemoryMarshal.Cast<byte, ulong>(page);
        value = words[0];
        return words.IndexOfAnyExcept(value) < 0; // vectorised by the runtime
    }

    [SkipLocalsInit] // the compression buffer is written before it is read; zeroing 3 KiB per page is waste
    private void WriteOne(ulong slot, ReadOnlySpan<byte> page)
    {
        ref var entry = ref _table[slot];
        if (IsSameFilled(page, out var value))
        {
            LockSlot(ref entry);
            FreeStored(ref entry);
            entry.Data = (long)value;
            Interlocked.Increment(ref _sameFilled);
            Interlocked.Increment(ref _pagesStored);
            UnlockSlot(ref entry, KindSame, 0);
            Interlocked.Increment(ref _pagesWritten);
            return;
        }

        // Compression into a buffer of threshold − 1 bytes fails (≤ 0) as soon as the output would not be shorter.
        Span<byte> compressed = stackalloc byte[IncompressibleThreshold - 1];
        var length = LZ4Codec.Encode(page, compressed, LZ4Level.L00_FAST);
        var kind = KindCompressed;
        ReadOnlySpan<byte> stored = compressed;
        if (length <= 0)
        {
            kind = KindRaw;
            length = PageSize;
            stored = page;
        }

        var address = _pool.Allocate(length, out var handle);
        stored[..length].CopyTo(new Span<byte>(address, length));
        LockSlot(ref entry);
        FreeStored(ref entry);
        entry.Data = (long)address;
        entry.Handle = handle;
        Interlocked.Increment(ref _pagesStored);
        Interlocked.Add(ref _compressedBytes, length);
        if (kind == KindRaw)
        {
            Interlocked.Increment(ref _incompressible);
        }

        UnlockSlot(ref entry, kind, length);
        Interlocked.Increment(ref _pagesWritten);
    }

    private SwapIoResult ReadOne(ulong slot, Span<byte> page)
    {
        ref var entry = ref _table[slot];
        var state = LockSlot(ref entry);
        var kind = (state & KindMask) >> KindShift;
        var length = state & LengthMask;
        var ok = true;
        switch (kind)
        {
            case KindEmpty:
                page.Clear();
                break;
            case KindSame:
                MemoryMarshal.Cast<byte, ulong>(page).Fill((ulong)entry.Data);
                break;
            case KindRaw:
                new ReadOnlySpan<byte>((void*)entry.Data, PageSize).CopyTo(page);
                break;
            default:
                ok = LZ4Codec.Decode(new ReadOnlySpan<byte>((void*)entry.Data, length), page) == PageSize;
                break;
        }

        UnlockSlot(ref entry, kind, length);
        if (!ok)
        {
            Interlocked.Increment(ref _readErrors);
            return SwapIoResult.Failed(SwapIoStatus.IoError, slot);
        }

        Interlocked.Increment(ref _pagesRead);
        return SwapIoResult.Success;
    }

    /// <summary>Frees what <paramref name="entry"/> stores and uncounts it. Caller holds the slot lock.</summary>
    private void FreeStored(ref ZramEntry entry)
    {
        var state = entry.State;
        var kind = (state & KindMask) >> KindShift;
        if (kind == KindEmpty)
        {
            return;
        }

        Interlocked.Decrement(ref _pagesStored);
        if (kind == KindSame)
        {
            Interlocked.Decrement(ref _sameFilled);
        }
        else
        {
            var length = state & LengthMask;
            _pool.Free((byte*)entry.Data, entry.Handle);
            Interlocked.Add(ref _compressedBytes, -length);
            if (kind == KindRaw)
            {
                Interlocked.Decrement(ref _incompressible);
            }
        }

        entry.Data = 0;
        entry.Handle = 0;
    }

    /// <summary>Takes the slot's spin bit; returns the state without it.</summary>
    private static int LockSlot(ref ZramEntry entry)
    {
        var spin = default(SpinWait);
        while (true)
        {
            var state = Volatile.Read(ref entry.State);
            if ((state & LockBit) == 0 && Interlocked.CompareExchange(ref entry.State, state | LockBit, state) == state)
            {
                return state;
            }

            spin.SpinOnce();
        }
    }

    /// <summary>Publishes the slot's new kind and length and drops its spin bit.</summary>
    private static void UnlockSlot(ref ZramEntry entry, int kind, int length) =>
        Volatile.Write(ref entry.State, (kind << KindShift) | length);

    /// <summary>One slot: the stored object's address (or the same-filled value), its pool handle, and kind | length | lock bit.</summary>
    [StructLayout(LayoutKind.Sequential)]
    private struct ZramEntry
    {
        public long Data;
        public uint Handle;
        public int State;
    }
}
