using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Configs;
using Hypervisor.HostMm.Swap;

namespace Hypervisor.Bench.HostMm.Swap;

/// <summary>
/// zram per page: store (same-filled test + LZ4 compress + pool copy) and load (decompress), on memtest-like
/// pseudo-random words, text-like pages and zero pages; the ZramRatio column is the compression ratio of the same
/// pages. 4 MiB per invocation; means are per page.
/// </summary>
[GroupBenchmarksBy(BenchmarkLogicalGroupRule.ByCategory, BenchmarkLogicalGroupRule.ByParams)]
[CategoriesColumn]
[Config(typeof(Config))]
public class ZramBenchmarks
{
    /// <summary>Pages per invocation.</summary>
    public const int Pages = 1024;

    private const int PageSize = SwapBenchPages.PageSize;

    private ZramSwapDevice _zram = null!;
    private byte[] _data = null!;
    private byte[] _read = null!;

    /// <summary>The page contents.</summary>
    [Params(SwapBenchData.Memtest, SwapBenchData.Text, SwapBenchData.Zero)]
    public SwapBenchData Data { get; set; }

    [GlobalSetup]
    public void GlobalSetup()
    {
        _data = SwapBenchPages.Make(Data, Pages);
        _read = new byte[_data.Length];
        _zram = new ZramSwapDevice((Pages + 1UL) * PageSize);
        Store();
    }

    [GlobalCleanup]
    public void GlobalCleanup() => _zram.Dispose();

    [Benchmark(OperationsPerInvoke = Pages, Description = "zram: store (compress)")]
    [BenchmarkCategory("store")]
    public void Store()
    {
        for (var i = 0; i < Pages; i++)
        {
            _zram.Write((ulong)(1 + i), _data.AsSpan(i * PageSize, PageSize));
        }
    }

    [Benchmark(OperationsPerInvoke = Pages, Description = "zram: load (decompress)")]
    [BenchmarkCategory("load")]
    public void Load()
    {
        for (var i = 0; i < Pages; i++)
        {
            _zram.Read((ulong)(1 + i), _read.AsSpan(i * PageSize, PageSize));
        }
    }

    private sealed class Config : ManualConfig
    {
        public Config() => AddColumn(new ZramRatioColumn());
    }
}
