using BenchmarkDotNet.Attributes;
using Hypervisor.Notifier;

namespace Hypervisor.Bench.Notifier;

/// <summary>
/// Cost of one invalidate_range_start + invalidate_range_end pair on a 4 KiB range, the unit every host
/// operation pays per notifier call. Targets (issue 2): ≤ 50 ns with one subscriber.
/// </summary>
[MemoryDiagnoser]
public class NotifierStartEndBenchmarks
{
    private BenchMm _mm = null!;
    private Hva _start;
    private Hva _end;

    /// <summary>Listed subscribers on the chain.</summary>
    [Params(1, 4, 64)]
    public int Subscribers { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _mm = new BenchMm();
        for (var i = 0; i < Subscribers; i++)
        {
            _mm.Notifiers.Register(new CountingNotifier());
        }

        _start = new Hva(0x7f00_0000_0000);
        _end = _start + Paging.PageSize;
    }

    [Benchmark(Description = "start+end pair")]
    public void StartEndPair()
    {
        var range = new NotifierRange(_mm, _start, _end, NotifierEvent.Clear);
        _mm.Notifiers.InvalidateRangeStart(ref range);
        _mm.Notifiers.InvalidateRangeEnd(ref range);
    }
}
