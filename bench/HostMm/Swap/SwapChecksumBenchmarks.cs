using BenchmarkDotNet.Attributes;
using Hypervisor.HostMm.Frames;

namespace Hypervisor.Bench.HostMm.Swap;

/// <summary>
/// The per-page work the swap area adds to every transfer, alone: the CRC-32C of one 4 KiB page by each
/// <see cref="Crc32CPath"/> this CPU supports (one row each; <see cref="Crc32C.Compute(ReadOnlySpan{byte})"/> takes
/// <see cref="Crc32C.Path"/>, the fastest), and the zero-page test. Explains the area-over-plain-file gap of
/// <see cref="SwapFileBenchmarks"/>.
/// </summary>
public class SwapChecksumBenchmarks
{
    private byte[] _page = null!;

    /// <summary>The checksum path of the row: every path this CPU supports.</summary>
    [ParamsSource(nameof(SupportedPaths))]
    public Crc32CPath Path { get; set; }

    /// <summary>The paths this CPU supports, slowest first.</summary>
    public static IEnumerable<Crc32CPath> SupportedPaths => Enum.GetValues<Crc32CPath>().Where(Crc32C.IsSupported);

    [GlobalSetup]
    public void GlobalSetup() => _page = SwapBenchPages.Make(SwapBenchData.Memtest, 1);

    [Benchmark(Description = "crc32c of one page")]
    public uint Crc() => Crc32C.Compute(Path, _page);

    [Benchmark(Description = "zero test of one page (non-zero at byte 0)")]
    public bool ZeroTest() => !_page.AsSpan().ContainsAnyExcept((byte)0);
}
