namespace Hypervisor.HostMm.Swap;

/// <summary>
/// A decorator over any <see cref="ISwapDevice"/> that injects faults for tests and the demo
/// (<c>--inject-swap-errors RATE</c>): per page, a read error, a write error (the page is not written), or a
/// silent corruption that flips one bit of the data on read or on write and reports success — which the swap
/// area's checksum must catch. Every page transfer draws the same three numbers from one seeded generator
/// whatever the rates, so a single-threaded sequence of calls is reproducible from its seed.
/// </summary>
/// <remarks>
/// The rates can be changed between calls (write cleanly, then fail the reads). The generator is guarded by a
/// leaf lock held only while drawing; the inner device is called outside it. Gathered transfers
/// (<see cref="IVectoredSwapDevice"/>) draw exactly as runs do and reach the inner device gathered too (vectored when it
/// is), so the faults a seed injects do not depend on which path the swap area takes.
/// </remarks>
public sealed class FaultInjectingSwapDevice : IVectoredSwapDevice
{
    private const int PageSize = (int)Paging.PageSize;

    private readonly ISwapDevice _inner;
    private readonly bool _ownsInner;
    private readonly Random _random;
    private readonly Lock _randomLock = new();
    private double _readErrorRate;
    private double _writeErrorRate;
    private double _corruptReadRate;
    private double _corruptWriteRate;
    private readonly SwapIoStatus _writeErrorStatus;
    private long _readErrors;
    private long _writeErrors;
    private long _corruptedReads;
    private long _corruptedWrites;

    /// <summary>Wraps <paramref name="inner"/> with the rates and seed of <paramref name="settings"/>.</summary>
    /// <param name="inner">The device that does the transfers.</param>
    /// <param name="settings">Seed and rates.</param>
    /// <param name="ownsInner">Whether <see cref="Dispose"/> disposes <paramref name="inner"/>.</param>
    /// <exception cref="SwapConfigurationException">A rate is not a probability.</exception>
    public FaultInjectingSwapDevice(ISwapDevice inner, SwapFaultInjection settings, bool ownsInner = true)
    {
        ArgumentNullException.ThrowIfNull(inner);
        ArgumentNullException.ThrowIfNull(settings);
        settings.Validate();
        _inner = inner;
        _ownsInner = ownsInner;
        _random = new Random(settings.Seed);
        _readErrorRate = settings.ReadErrorRate;
        _writeErrorRate = settings.WriteErrorRate;
        _corruptReadRate = settings.CorruptReadRate;
        _corruptWriteRate = settings.CorruptWriteRate;
        _writeErrorStatus = settings.WriteErrorStatus;
        Name = $"inject({inner.Name})";
    }

    /// <summary>The wrapped device.</summary>
    public ISwapDevice Inner => _inner;

    /// <summary>Probability that a page read reports <see cref="SwapIoStatus.IoError"/>.</summary>
    public double ReadErrorRate
    {
        get => Volatile.Read(ref _readErrorRate);
        set => SetRate(ref _readErrorRate, value, nameof(ReadErrorRate));
    }

    /// <summary>Probability that a page write fails with <see cref="SwapFaultInjection.WriteErrorStatus"/> and is not written.</summary>
    public double WriteErrorRate
    {
        get => Volatile.Read(ref _writeErrorRate);
        set => SetRate(ref _writeErrorRate, value, nameof(WriteErrorRate));
    }

    /// <summary>Probability that a page read returns one flipped bit with no error.</summary>
    public double CorruptReadRate
    {
        get => Volatile.Read(ref _corruptReadRate);
        set => SetRate(ref _corruptReadRate, value, nameof(CorruptReadRate));
    }

    /// <summary>Probability that a page write stores one flipped bit with no error.</summary>
    public double CorruptWriteRate
    {
        get => Volatile.Read(ref _corruptWriteRate);
        set => SetRate(ref _corruptWriteRate, value, nameof(CorruptWriteRate));
    }

    /// <inheritdoc />
    public ulong SlotCount => _inner.SlotCount;

    /// <inheritdoc />
    public bool IsSynchronous => _inner.IsSynchronous;

    /// <inheritdoc />
    public string Name { get; }

    /// <inheritdoc />
    public SwapIoResult Read(ulong slot, Span<byte> page)
    {
        SwapDeviceGuard.CheckPage(this, slot, page.Length);
        return ReadRun(slot, page);
    }

    /// <inheritdoc />
    public SwapIoResult Write(ulong slot, ReadOnlySpan<byte> page)
    {
        SwapDeviceGuard.CheckPage(this, slot, page.Length);
        return WriteRun(slot, page);
    }

    /// <inheritdoc />
    public SwapIoResult ReadRun(ulong firstSlot, Span<byte> pages)
    {
        var count = SwapDeviceGuard.CheckRun(this, firstSlot, pages.Length);
        var result = _inner.ReadRun(firstSlot, pages);
        var good = result.IsOk ? count : (int)(result.Slot - firstSlot);
        for (var i = 0; i < good; i++)
        {
            var fault = Draw(ReadErrorRate, CorruptReadRate);
            if (fault.Error)
            {
                Interlocked.Increment(ref _readErrors);
                return SwapIoResult.Failed(SwapIoStatus.IoError, firstSlot + (ulong)i);
            }

            if (fault.Corrupt)
            {
                Interlocked.Increment(ref _corruptedReads);
                FlipBit(pages.Slice(i * PageSize, PageSize), fault.Bit);
            }
        }

        return result;
    }

    /// <inheritdoc />
    public SwapIoResult WriteRun(ulong firstSlot, ReadOnlySpan<byte> pages)
    {
        var count = SwapDeviceGuard.CheckRun(this, firstSlot, pages.Length);
        var start = 0; // first page not yet passed to the inner device
        Span<byte> corrupted = stackalloc byte[PageSize];
        for (var i = 0; i < count; i++)
        {
            var fault = Draw(WriteErrorRate, CorruptWriteRate);
            if (!fault.Error && !fault.Corrupt)
            {
                continue;
            }

            var flushed = Flush(firstSlot, pages, start, i);
            if (!flushed.IsOk)
            {
                return flushed;
            }

            var slot = firstSlot + (ulong)i;
            if (fault.Error)
            {
                Interlocked.Increment(ref _writeErrors);
                return SwapIoResult.Failed(_writeErrorStatus, slot);
            }

            Interlocked.Increment(ref _corruptedWrites);
            pages.Slice(i * PageSize, PageSize).CopyTo(corrupted);
            FlipBit(corrupted, fault.Bit);
            var written = _inner.Write(slot, corrupted);
            if (!written.IsOk)
            {
                return written;
            }

            start = i + 1;
        }

        return Flush(firstSlot, pages, start, count);
    }

    /// <inheritdoc />
    // unsafe: a corrupted page is copied out of the caller's native page.
    public unsafe SwapIoResult WriteGather(ulong firstSlot, ReadOnlySpan<nint> pages)
    {
        var count = SwapGather.Check(this, firstSlot, pages);
        var start = 0; // first page not yet passed to the inner device
        Span<byte> corrupted = stackalloc byte[PageSize];
        for (var i = 0; i < count; i++)
        {
            var fault = Draw(WriteErrorRate, CorruptWriteRate);
            if (!fault.Error && !fault.Corrupt)
            {
                continue;
            }

            var flushed = i > start ? SwapGather.Write(_inner, firstSlot + (ulong)start, pages[start..i]) : SwapIoResult.Success;
            if (!flushed.IsOk)
            {
                return flushed;
            }

            var slot = firstSlot + (ulong)i;
            if (fault.Error)
            {
                Interlocked.Increment(ref _writeErrors);
                return SwapIoResult.Failed(_writeErrorStatus, slot);
            }

            Interlocked.Increment(ref _corruptedWrites);
            new ReadOnlySpan<byte>((void*)pages[i], PageSize).CopyTo(corrupted);
            FlipBit(corrupted, fault.Bit);
            var written = _inner.Write(slot, corrupted);
            if (!written.IsOk)
            {
                return written;
            }

            start = i + 1;
        }

        return count > start ? SwapGather.Write(_inner, firstSlot + (ulong)start, pages[start..]) : SwapIoResult.Success;
    }

    /// <inheritdoc />
    // unsafe: a corruption flips a bit of the caller's native page.
    public unsafe SwapIoResult ReadScatter(ulong firstSlot, ReadOnlySpan<nint> pages)
    {
        var count = SwapGather.Check(this, firstSlot, pages);
        var result = SwapGather.Read(_inner, firstSlot, pages);
        var good = result.IsOk ? count : (int)(result.Slot - firstSlot);
        for (var i = 0; i < good; i++)
        {
            var fault = Draw(ReadErrorRate, CorruptReadRate);
            if (fault.Error)
            {
                Interlocked.Increment(ref _readErrors);
                return SwapIoResult.Failed(SwapIoStatus.IoError, firstSlot + (ulong)i);
            }

            if (fault.Corrupt)
            {
                Interlocked.Increment(ref _corruptedReads);
                FlipBit(new Span<byte>((void*)pages[i], PageSize), fault.Bit);
            }
        }

        return result;
    }

    /// <inheritdoc />
    public void Discard(ulong firstSlot, int count = 1) => _inner.Discard(firstSlot, count);

    /// <inheritdoc />
    public SwapDeviceStats GetStats() => _inner.GetStats();

    /// <summary>What has been injected so far.</summary>
    public FaultInjectionStats GetInjectionStats() => new()
    {
        ReadErrors = Volatile.Read(ref _readErrors),
        WriteErrors = Volatile.Read(ref _writeErrors),
        CorruptedReads = Volatile.Read(ref _corruptedReads),
        CorruptedWrites = Volatile.Read(ref _corruptedWrites),
    };

    /// <summary>Disposes the inner device when this decorator owns it.</summary>
    public void Dispose()
    {
        if (_ownsInner)
        {
            _inner.Dispose();
        }
    }

    /// <inheritdoc />
    public override string ToString() => Name;

    private static void FlipBit(Span<byte> page, int bit) => page[bit >> 3] ^= (byte)(1 << (bit & 7));

    private static void SetRate(ref double field, double value, string name)
    {
        SwapFaultInjection.CheckRate(value, name);
        Volatile.Write(ref field, value);
    }

    private SwapIoResult Flush(ulong firstSlot, ReadOnlySpan<byte> pages, int start, int end) =>
        end > start
            ? _inner.WriteRun(firstSlot + (ulong)start, pages[(start * PageSize)..(end * PageSize)])
            : SwapIoResult.Success;

    private (bool Error, bool Corrupt, int Bit) Draw(double errorRate, double corruptRate)
    {
        lock (_randomLock)
        {
            var error = _random.NextDouble() < errorRate;
            var corrupt = _random.NextDouble() < corruptRate;
            var bit = _random.Next(PageSize * 8);
            return (error, corrupt, bit);
        }
    }
}
