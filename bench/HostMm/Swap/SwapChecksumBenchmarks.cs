using BenchmarkDotNet.Attributes;
using Hypervisor.HostMm.Frames;

namespace Hypervisor.Bench.HostMm.Swap;

/// <summary>
/// The per-page work the swap area adds to every transfer, alone: the CRC-32C (<see cref="Crc32C.Compute"/>: three
/// interleaved hardware chains where the CPU has PCLMULQDQ; beside it the single dependent chain it replaced, the
/// baseline) and the zero-page test. Explains the area-over-plain-file gap of
/// <see cref="SwapFileBenchmarks"/>.
/// </summary>
public class SwapChecksumBenchmarks
{
    private byte[] _page = null!;

    [GlobalSetup]
    public void GlobalSetup() => _page = SwapBenchPages.Make(SwapBenchData.Memtest, 1);

    [Benchmark(Baseline = true, Description = "crc32c of one page, one crc32 chain")]
    public uint CrcOneChain() => Crc32C.IsHardwareAccelerated ? Crc32C.ComputeHardware(_page) : Crc32C.ComputeSoftware(_page);

    [Benchmark(Description = "crc32c of one page (Crc32C.Compute: three chains)")]
    public uint Crc() => Crc32C.Compute(_page);

    [Benchmark(Description = "zero test of one page (non-zero at byte 0)")]
    public bool ZeroTest() => !_page.AsSpan().ContainsAnyExcept((byte)0);
}
