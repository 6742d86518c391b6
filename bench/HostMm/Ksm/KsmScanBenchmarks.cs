using System.Globalization;
using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Configs;

namespace Hypervisor.Bench.HostMm.Ksm;

/// <summary>
/// KSM's scan rate, beside Linux's ksmd scanning the same number of pages of the same contents in the same run.
/// Means are per page.
/// </summary>
/// <remarks>
/// <para>Scan: <see cref="Pages"/> mergeable pages of unique contents (<see cref="KsmBenchPages"/>) that do not
/// change: each visit checksums the page, finds the checksum unchanged, misses the stable tree and inserts the page
/// into the unstable tree (rebuilt every full scan); nothing merges. Smart scan is off on both sides, so no visit is
/// skipped. The kernel row (baseline) times ksmd with <c>pages_to_scan</c> = the page count and
/// <c>sleep_millisecs=0</c> from <c>run=1</c> until <c>full_scans</c> has grown by 2; every knob is saved before and
/// restored after (see <see cref="LinuxKsmdScan"/>). Where <c>/sys/kernel/mm/ksm</c> is not writable the kernel row
/// is dropped with a line saying why (<see cref="LinuxKsmdConfig"/>). Target (issue 12): ≥ 1 M pages/s on one core.</para>
/// </remarks>
[Config(typeof(LinuxKsmdConfig))]
[GroupBenchmarksBy(BenchmarkLogicalGroupRule.ByCategory)]
[CategoriesColumn]
public class KsmScanBenchmarks
{
    /// <summary>Mergeable pages scanned (256 MiB).</summary>
    public const int Pages = 64 * 1024;

    /// <summary>Full scans per invocation, on both sides.</summary>
    private const int Scans = 2;

    private static readonly TimeSpan KsmdTimeout = TimeSpan.FromMinutes(2);

    private LinuxKsmdScan? _linux;

    [GlobalSetup(Target = nameof(LinuxKsmd))]
    public void SetupLinux()
    {
        _linux = new LinuxKsmdScan(Pages);

        // The first scan makes an rmap item per page and records checksums; the next brings ksmd to steady state.
        _linux.RunFullScans(2, KsmdTimeout);
        _linux.Stop();
    }

    /// <summary>Untimed: stopping ksmd waits for the scan it is in (see <see cref="LinuxKsmdScan"/>).</summary>
    [IterationCleanup(Target = nameof(LinuxKsmd))]
    public void StopLinux() => _linux!.Stop();

    [GlobalCleanup(Target = nameof(LinuxKsmd))]
    public void CleanupLinux()
    {
        var (scanned, runs) = (_linux?.PagesScanned ?? 0, _linux?.Runs ?? 0);
        _linux?.Dispose();
        if (runs > 0)
        {
            // ksmd scans every mergeable region on the machine: this line shows whether only ours was there.
            var perRun = (double)scanned / runs;
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"// Linux ksmd: {perRun:N0} pages_scanned per invocation (expected {Scans * Pages:N0}: {Scans} full scans of {Pages:N0} pages)"));
        }
    }

    [Benchmark(Baseline = true, OperationsPerInvoke = Scans * Pages, Description = "Linux ksmd: full scans of unchanged unique pages, sleep_millisecs=0")]
    [BenchmarkCategory("Scan")]
    public long LinuxKsmd() => _linux!.RunFullScans(Scans, KsmdTimeout);
}
