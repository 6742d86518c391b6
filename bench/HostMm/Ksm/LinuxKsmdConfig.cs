using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Filters;

namespace Hypervisor.Bench.HostMm.Ksm;

/// <summary>
/// Drops the rows that drive the real kernel's ksmd (their method names start with <see cref="KernelPrefix"/>) when
/// this process cannot write <c>/sys/kernel/mm/ksm</c>, and says why in one line instead of failing the run; adds the
/// pages-per-second column.
/// </summary>
internal sealed class LinuxKsmdConfig : ManualConfig
{
    /// <summary>The method-name prefix of the rows that need the real kernel's ksmd.</summary>
    public const string KernelPrefix = "Linux";

    private static int _explained;

    public LinuxKsmdConfig()
    {
        var available = LinuxKsm.CanControl(out var reason);
        if (!available && Interlocked.Exchange(ref _explained, 1) == 0)
        {
            Console.WriteLine($"// KSM benchmarks: the Linux ksmd rows are skipped: {reason}");
        }

        AddColumn(new PagesPerSecondColumn());
        AddFilter(new SimpleFilter(b => available || !b.Descriptor.WorkloadMethod.Name.StartsWith(KernelPrefix, StringComparison.Ordinal)));
    }
}
