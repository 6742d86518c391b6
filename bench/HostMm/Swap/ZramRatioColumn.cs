using System.Globalization;
using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;
using Hypervisor.HostMm.Swap;

namespace Hypervisor.Bench.HostMm.Swap;

/// <summary>The zram compression ratio (<see cref="ZramStats.CompressionRatio"/>) of a benchmark's data kind, measured by storing the same pages.</summary>
internal sealed class ZramRatioColumn : IColumn
{
    public string Id => nameof(ZramRatioColumn);

    public string ColumnName => "ZramRatio";

    public bool AlwaysShow => true;

    public ColumnCategory Category => ColumnCategory.Custom;

    public int PriorityInCategory => 0;

    public bool IsNumeric => true;

    public UnitType UnitType => UnitType.Dimensionless;

    public string Legend => "orig_data_size / bytes stored (a same-filled page counts 8 bytes), on the benchmark's pages";

    public bool IsDefault(Summary summary, BenchmarkCase benchmarkCase) => false;

    public bool IsAvailable(Summary summary) => true;

    public string GetValue(Summary summary, BenchmarkCase benchmarkCase) => GetValue(summary, benchmarkCase, SummaryStyle.Default);

    public string GetValue(Summary summary, BenchmarkCase benchmarkCase, SummaryStyle style)
    {
        var parameter = benchmarkCase.Parameters.Items.FirstOrDefault(p => p.Name == nameof(ZramBenchmarks.Data));
        if (parameter?.Value is not SwapBenchData kind)
        {
            return "-";
        }

        using var zram = new ZramSwapDevice((ZramBenchmarks.Pages + 1UL) * SwapBenchPages.PageSize);
        zram.WriteRun(1, SwapBenchPages.Make(kind, ZramBenchmarks.Pages));
        return zram.GetZramStats().CompressionRatio.ToString("0.00", CultureInfo.InvariantCulture);
    }
}
