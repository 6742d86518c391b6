using BenchmarkDotNet.Attributes;
using Hypervisor.HostMm.Frames;

namespace Hypervisor.Bench.HostMm.Swap;

/// <summary>
/// The per-page work the swap area adds to every transfer, alone: the CRC-32C (<see cref="Crc32C.Compute"/>, the
/// hardware instruction in one dependent chain) and the zero-page test. Explains the area-over-plain-file gap of
/// <see cref="SwapFileBenchmarks"/>.
/// </summary>
public class SwapChecksumBenchmarks
{
    private byte[] _page = null!;

    [GlobalSetup]
    public void GlobalSetup() => _page = SwapBenchPages.Make(SwapBenchData.Memtest, 1);

    [Benchmark(Description = "crc32c of one page")]
    public uint Crc() => Crc32C.Compute(_page);

    [Benchmark(Description = "zero test of one page (non-zero at byte 0)")]
    public bool ZeroTest() => !_page.AsSpan().ContainsAnyExcept((byte)0);
}
