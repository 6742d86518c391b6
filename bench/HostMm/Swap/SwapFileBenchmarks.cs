using System.Runtime.InteropServices;
using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Configs;
using Hypervisor.HostMm.Swap;
using Microsoft.Win32.SafeHandles;

namespace Hypervisor.Bench.HostMm.Swap;

/// <summary>
/// The swap area's checked transfers on the file device — a CRC-32C per page, the zero-map test, the slot-ownership
/// check, one <see cref="RandomAccess"/> call per run — against plain <see cref="RandomAccess"/> writes and reads of
/// the same pages at the same offsets of another file in the same folder, in the same run (the baseline of each
/// group; the Ratio column is swap area / plain file). 16 MiB of memtest-like pages per invocation, in calls of
/// <see cref="PagesPerCall"/> contiguous slots; means are per page. Target (issue 11): within 1.5× of plain file I/O.
/// The frame rows do the same from and to 4096 pages scattered in native memory (every other page of one block, as
/// reclaim's frames are): <see cref="SwapArea.WriteFrames"/> and <see cref="SwapArea.ReadFrames"/>, on Linux one
/// <c>pwritev</c>/<c>preadv</c> per call pointing at the pages.
/// </summary>
[GroupBenchmarksBy(BenchmarkLogicalGroupRule.ByCategory, BenchmarkLogicalGroupRule.ByParams)]
[CategoriesColumn]
// unsafe: the frame rows' pages are native memory, handed to the device by address.
public unsafe class SwapFileBenchmarks
{
    private const int Pages = 4096;
    private const int PageSize = SwapBenchPages.PageSize;

    private SwapArea _area = null!;
    private SafeFileHandle _plain = null!;
    private string _plainPath = null!;
    private byte[] _data = null!;
    private byte[] _read = null!;
    private byte* _frames;
    private nint[] _frameAddresses = null!;

    /// <summary>Contiguous slots per call: 1 (single pages), 8 (a readahead window), 64.</summary>
    [Params(1, 8, 64)]
    public int PagesPerCall { get; set; }

    [GlobalSetup]
    public void GlobalSetup()
    {
        _data = SwapBenchPages.Make(SwapBenchData.Memtest, Pages);
        _read = new byte[_data.Length];
        _area = SwapFactory.CreateArea(new SwapOptions { SizeBytes = (ulong)(Pages + 1) * PageSize });
        var slots = new ulong[Pages];
        if (_area.AllocateBatch(slots) != Pages || slots[^1] != Pages)
        {
            throw new InvalidOperationException("a fresh area must hand out slots 1..4096 in order");
        }

        _plainPath = Path.Combine(Path.GetTempPath(), $"hv-swap-bench-plain-{Guid.NewGuid():N}");
        _plain = File.OpenHandle(_plainPath, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.None, FileOptions.DeleteOnClose, (long)(Pages + 1) * PageSize);
        RandomAccess.SetLength(_plain, (long)(Pages + 1) * PageSize);
        _frames = (byte*)NativeMemory.AlignedAlloc((nuint)(2 * Pages * PageSize), PageSize);
        _frameAddresses = new nint[Pages];
        for (var i = 0; i < Pages; i++)
        {
            _frameAddresses[i] = (nint)(_frames + (2L * i * PageSize));
            _data.AsSpan(i * PageSize, PageSize).CopyTo(new Span<byte>((void*)_frameAddresses[i], PageSize));
        }

        AreaWrite();
        PlainWrite();
    }

    [GlobalCleanup]
    public void GlobalCleanup()
    {
        _area.Dispose();
        NativeMemory.AlignedFree(_frames);
        _plain.Dispose();
        File.Delete(_plainPath);
    }

    [Benchmark(OperationsPerInvoke = Pages, Description = "swap area: write (crc + file)")]
    [BenchmarkCategory("write")]
    public void AreaWrite()
    {
        for (var i = 0; i < Pages; i += PagesPerCall)
        {
            var result = _area.WriteRun((ulong)(1 + i), _data.AsSpan(i * PageSize, PagesPerCall * PageSize));
            if (!result.IsOk)
            {
                throw new InvalidOperationException(result.ToString());
            }
        }
    }

    [Benchmark(OperationsPerInvoke = Pages, Description = "swap area: write from scattered frames (crc + pwritev)")]
    [BenchmarkCategory("write")]
    public void AreaWriteFrames()
    {
        for (var i = 0; i < Pages; i += PagesPerCall)
        {
            var result = _area.WriteFrames((ulong)(1 + i), _frameAddresses.AsSpan(i, PagesPerCall));
            if (!result.IsOk)
            {
                throw new InvalidOperationException(result.ToString());
            }
        }
    }

    [Benchmark(Baseline = true, OperationsPerInvoke = Pages, Description = "plain file: RandomAccess.Write")]
    [BenchmarkCategory("write")]
    public void PlainWrite()
    {
        for (var i = 0; i < Pages; i += PagesPerCall)
        {
            RandomAccess.Write(_plain, _data.AsSpan(i * PageSize, PagesPerCall * PageSize), (long)(1 + i) * PageSize);
        }
    }

    [Benchmark(OperationsPerInvoke = Pages, Description = "swap area: read (file + crc check)")]
    [BenchmarkCategory("read")]
    public void AreaRead()
    {
        for (var i = 0; i < Pages; i += PagesPerCall)
        {
            var result = _area.ReadRun((ulong)(1 + i), _read.AsSpan(i * PageSize, PagesPerCall * PageSize));
            if (!result.IsOk)
            {
                throw new InvalidOperationException(result.ToString());
            }
        }
    }

    [Benchmark(OperationsPerInvoke = Pages, Description = "swap area: read into scattered frames (preadv + crc check)")]
    [BenchmarkCategory("read")]
    public void AreaReadFrames()
    {
        for (var i = 0; i < Pages; i += PagesPerCall)
        {
            var result = _area.ReadFrames((ulong)(1 + i), _frameAddresses.AsSpan(i, PagesPerCall));
            if (!result.IsOk)
            {
                throw new InvalidOperationException(result.ToString());
            }
        }
    }

    [Benchmark(Baseline = true, OperationsPerInvoke = Pages, Description = "plain file: RandomAccess.Read")]
    [BenchmarkCategory("read")]
    public void PlainRead()
    {
        for (var i = 0; i < Pages; i += PagesPerCall)
        {
            RandomAccess.Read(_plain, _read.AsSpan(i * PageSize, PagesPerCall * PageSize), (long)(1 + i) * PageSize);
        }
    }
}
