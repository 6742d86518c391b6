using System.Buffers.Binary;
using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using Hypervisor.Notifier;
using Hypervisor.Vmm.Devices.Dma;

namespace Hypervisor.Vmm.Demo.Stress;

/// <summary>
/// The DMA copy engine (<see cref="DmaEngine"/>, its registration cache in <see cref="DmaCacheMode.Safe"/> mode) driven
/// by a VMM thread as a guest driver would drive it: for each scheduled copy the source buffer in the DMA chunk's first
/// half is filled with a pattern unique to the copy and page (through the host, a VMM store), the engine is programmed
/// through its registers with the source and the same pages of the chunk's second half, its doorbell rung and its status
/// polled, and the destination read back through the host and compared byte for byte. Reclaim, KSM, migration, THP
/// splits, forks, memslot remaps and MADV_DONTNEED strike the chunk all the while (it is one of
/// <see cref="StressGuestLayout.HostChunks"/>); the engine caches the buffers' frames between copies, so every strike must
/// reach it through the user event channel. A wrong byte is a corrupted page; the engine's own debug check counts copies
/// through a stale translation.
/// </summary>
/// <remarks>Threads: a copy runs on the engine's thread while this one holds the <see cref="HostOperationGate"/> shared,
/// so an audit or a remap never sees a copy in flight (a VMM quiesces its devices around a memslot change); the engine
/// may wait for invalidations in flight to end, as every other mechanism inside the gate may.</remarks>
internal sealed class DmaMechanism : StressMechanism
{
    /// <summary>The longest copy, in pages; copies start at a multiple of it in the chunk's first half.</summary>
    public const int MaxPages = 16;

    /// <summary>The most corruption lines kept for the report.</summary>
    public const int MaxLinesKept = 20;

    private const ulong HalfBytes = StressGuestLayout.ChunkBytes / 2;
    private static readonly TimeSpan CopyTimeout = TimeSpan.FromSeconds(60);

    private readonly StressContext _context;
    private readonly DmaEngine? _engine;
    private readonly byte[] _expected = new byte[MaxPages * (int)Paging.PageSize];
    private readonly byte[] _actual = new byte[MaxPages * (int)Paging.PageSize];
    private readonly List<string> _lines = [];
    private long _verifiedPages;
    private long _droppedPages;
    private long _corruptedPages;
    private long _faults;

    /// <summary>Creates the mechanism over the VM's engine (null when the run leaves the engine out).</summary>
    public DmaMechanism(StressContext context)
    {
        _context = context;
        _engine = context.Vm.Dma;
    }

    public override StressMechanismKind Kind => StressMechanismKind.Dma;

    public override string Name => "DMA engine (safe cache)";

    public override string OperationName => "copies verified";

    public override string EffectName => "cached translations invalidated";

    public override long Effect => _engine?.Counters.Invalidations ?? 0;

    public override string Detail
    {
        get
        {
            var d = Counters ?? default;
            return string.Create(
                CultureInfo.InvariantCulture,
                $"{d.Bytes:N0} bytes, hit rate {d.HitRate:P1}; {d.StaleDmas:N0} stale DMAs, {CorruptedPages:N0} wrong pages, {DroppedPages:N0} found dropped by an announced DONTNEED, {Faults:N0} faults");
        }
    }

    /// <summary>The engine's counters now, or null when the run left the engine out.</summary>
    public DmaEngineCounters? Counters => _engine?.Counters;

    /// <summary>Destination pages read back and found as the copy's source was written.</summary>
    public long VerifiedPages => Interlocked.Read(ref _verifiedPages);

    /// <summary>Destination pages found zero where a DONTNEED of the chunk was announced during the copy.</summary>
    public long DroppedPages => Interlocked.Read(ref _droppedPages);

    /// <summary>Destination pages with a wrong byte: a stale DMA or a lost write.</summary>
    public long CorruptedPages => Interlocked.Read(ref _corruptedPages);

    /// <summary>Copies the engine ended with <see cref="DmaStatus.Fault"/> (a page it could not resolve; nothing copied).</summary>
    public long Faults => Interlocked.Read(ref _faults);

    /// <summary>The first wrong pages, one line each.</summary>
    public IReadOnlyList<string> CorruptionLines
    {
        get
        {
            lock (_lines)
            {
                return [.. _lines];
            }
        }
    }

    protected override void Execute(in StressOperation operation, CancellationToken stop)
    {
        var engine = _engine ?? throw new InvalidOperationException("the stress VM has no DMA engine: the run left it out");
        var layout = _context.Memory.Layout;
        var length = operation.Pages * (int)Paging.PageSize;
        var source = layout.DmaGpa + ((ulong)operation.Page * Paging.PageSize);
        var destination = source + HalfBytes;
        var expected = _expected.AsSpan(0, length);
        var actual = _actual.AsSpan(0, length);
        var discards = _context.DmaDiscards.Read();
        Fill(expected, operation.Number, operation.Page);
        _context.Process.Write(_context.Memory.HvaOf(source), expected);

        var status = Copy(engine, source, destination, (ulong)length, operation.Number);
        if (status == DmaStatus.Fault)
        {
            Interlocked.Increment(ref _faults);
            return;
        }

        if (status != DmaStatus.Done)
        {
            throw new InvalidOperationException(string.Create(CultureInfo.InvariantCulture, $"DMA copy {operation.Number} (0x{source:x} to 0x{destination:x}, {length} bytes) ended {status}"));
        }

        _context.Process.Read(_context.Memory.HvaOf(destination), actual);
        var mayHaveDropped = _context.DmaDiscards.MayHaveDropped(discards);
        for (var page = 0; page < operation.Pages; page++)
        {
            var range = new Range(page * (int)Paging.PageSize, (page + 1) * (int)Paging.PageSize);
            var want = expected[range];
            var got = actual[range];
            if (got.SequenceEqual(want))
            {
                Interlocked.Increment(ref _verifiedPages);
            }
            else if (mayHaveDropped && !got.ContainsAnyExcept((byte)0))
            {
                Interlocked.Increment(ref _droppedPages);
            }
            else
            {
                Interlocked.Increment(ref _corruptedPages);
                Report(operation.Number, destination + ((ulong)page * Paging.PageSize), want, got);
            }
        }
    }

    /// <summary>The copy's pattern: every 64-bit word differs with the copy, the page (of the chunk's half) and the word.</summary>
    private static void Fill(Span<byte> buffer, long copy, int firstPage)
    {
        var words = MemoryMarshal.Cast<byte, ulong>(buffer);
        const int wordsPerPage = (int)Paging.PageSize / sizeof(ulong);
        for (var i = 0; i < words.Length; i++)
        {
            var page = (ulong)(firstPage + (i / wordsPerPage));
            var word = (ulong)(i % wordsPerPage);
            words[i] = BinaryPrimitives.ReverseEndianness(((ulong)copy << 32) ^ (page << 9) ^ word) * 0x9E3779B97F4A7C15UL;
        }
    }

    /// <summary>Programs the engine through its registers, rings the doorbell and polls the status until the copy ended.</summary>
    private static DmaStatus Copy(DmaEngine engine, ulong source, ulong destination, ulong length, long number)
    {
        WriteRegister(engine, DmaEngine.SourceRegister, source);
        WriteRegister(engine, DmaEngine.DestinationRegister, destination);
        WriteRegister(engine, DmaEngine.LengthRegister, length);
        WriteRegister(engine, DmaEngine.DoorbellRegister, 1);
        var started = Stopwatch.GetTimestamp();
        var spinner = default(SpinWait);
        DmaStatus status;
        while ((status = (DmaStatus)ReadRegister(engine, DmaEngine.StatusRegister)) == DmaStatus.Busy)
        {
            if (Stopwatch.GetElapsedTime(started) > CopyTimeout)
            {
                throw new TimeoutException(string.Create(CultureInfo.InvariantCulture, $"DMA copy {number} was still busy after {CopyTimeout.TotalSeconds:0} s"));
            }

            spinner.SpinOnce(sleep1Threshold: 30);
        }

        return status;
    }

    private static void WriteRegister(DmaEngine engine, ulong register, ulong value)
    {
        Span<byte> bytes = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, value);
        engine.Write(register, bytes);
    }

    private static ulong ReadRegister(DmaEngine engine, ulong register)
    {
        Span<byte> bytes = stackalloc byte[8];
        engine.Read(register, bytes);
        return BinaryPrimitives.ReadUInt64LittleEndian(bytes);
    }

    private void Report(long copy, ulong gpa, ReadOnlySpan<byte> want, ReadOnlySpan<byte> got)
    {
        var offset = want.CommonPrefixLength(got);
        var line = string.Create(CultureInfo.InvariantCulture, $"DMA copy {copy}: destination page 0x{gpa:x} wrong from byte {offset} (0x{got[offset]:x2}, expected 0x{want[offset]:x2})");
        lock (_lines)
        {
            if (_lines.Count < MaxLinesKept)
            {
                _lines.Add(line);
            }
        }
    }
}
