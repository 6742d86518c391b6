using BenchmarkDotNet.Attributes;
using Hypervisor.Notifier;

namespace Hypervisor.Bench.Notifier;

/// <summary>
/// Cost of a start+end pair on a 4 KiB range with 10 000 interval subscriptions (16 KiB each, 64 KiB
/// apart) in the tree: one that the range hits, and one that falls between intervals. Target (issue 2):
/// ≤ 200 ns per pair.
/// </summary>
[MemoryDiagnoser]
public class NotifierIntervalBenchmarks
{
    private const int IntervalCount = 10_000;
    private const ulong Spacing = 64 * 1024;

    private BenchMm _mm = null!;
    private Hva _hitStart;
    private Hva _missStart;

    [GlobalSetup]
    public void Setup()
    {
        _mm = new BenchMm();
        var interval = new SequenceOnlyInterval();
        var baseAddress = new Hva(0x10_0000_0000);
        for (var i = 0; i < IntervalCount; i++)
        {
            _mm.Notifiers.InsertInterval(baseAddress + ((ulong)i * Spacing), 4 * Paging.PageSize, interval);
        }

        _hitStart = baseAddress + ((IntervalCount / 2) * Spacing) + Paging.PageSize;
        _missStart = baseAddress + ((IntervalCount / 2) * Spacing) + (8 * Paging.PageSize);
    }

    [Benchmark(Description = "10k intervals, range hits one")]
    public void StartEndHit() => Pair(_hitStart);

    [Benchmark(Description = "10k intervals, range hits none")]
    public void StartEndMiss() => Pair(_missStart);

    private void Pair(Hva start)
    {
        var range = new NotifierRange(_mm, start, start + Paging.PageSize, NotifierEvent.Clear);
        _mm.Notifiers.InvalidateRangeStart(ref range);
        _mm.Notifiers.InvalidateRangeEnd(ref range);
    }
}
