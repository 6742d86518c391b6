using BenchmarkDotNet.Running;

namespace Hypervisor.Bench;

/// <summary>Entry point: <c>dotnet run -c Release --project bench -- --filter '*Notifier*'</c>.</summary>
public static class Program
{
    /// <summary>Runs the benchmarks the command line selects.</summary>
    public static void Main(string[] args) => BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
}
