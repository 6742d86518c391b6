namespace Hypervisor.Vmm.Bench;

/// <summary>One quick measurement: the operation's cost per item and, where one exists, the same-run baseline's.</summary>
/// <param name="Name">What was measured.</param>
/// <param name="Items">Items per call (sptes or pages).</param>
/// <param name="NanosecondsPerItem">Best repetition's cost per item.</param>
/// <param name="BaselineName">The baseline measured in the same run, or null.</param>
/// <param name="BaselineNanosecondsPerItem">The baseline's best cost per item (0 without a baseline).</param>
/// <param name="Calls">Separate calls of <paramref name="Items"/> each per timed repetition (small ranges are timed as many calls).</param>
/// <param name="PairedRatio">
/// The median over the repetitions of operation / baseline where each repetition timed both back to back (NaN when the
/// two were timed apart): steadier than the ratio of the bests when the baseline itself moves from run to run.
/// </param>
public readonly record struct QuickBenchResult(string Name, long Items, double NanosecondsPerItem, string? BaselineName, double BaselineNanosecondsPerItem, int Calls = 1, double PairedRatio = double.NaN)
{
    /// <summary>Items per second.</summary>
    public double ItemsPerSecond => NanosecondsPerItem > 0 ? 1e9 / NanosecondsPerItem : double.PositiveInfinity;

    /// <summary>Cost relative to the baseline (operation / baseline), or NaN without one.</summary>
    public double RatioToBaseline => BaselineNanosecondsPerItem > 0 ? NanosecondsPerItem / BaselineNanosecondsPerItem : double.NaN;
}
