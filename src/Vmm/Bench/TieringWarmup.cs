namespace Hypervisor.Vmm.Bench;

/// <summary>
/// Brings code to its optimised tier before measuring (<c>bench/</c> and <c>hv bench</c>). The runtime starts
/// counting calls only after 100 ms without new JIT work, promotes a method after 30 calls and compiles it on
/// a background thread; benchmarks with an IterationSetup run one invocation per iteration, so a short job
/// would otherwise time tier-0 code. Run the operation (on a small table) enough times, wait for the
/// background compile, and run it again.
/// </summary>
public static class TieringWarmup
{
    /// <summary>Runs <paramref name="operation"/> 3 × 60 times with a 250 ms pause after each 60.</summary>
    public static void Run(Action operation)
    {
        ArgumentNullException.ThrowIfNull(operation);
        for (var round = 0; round < 3; round++)
        {
            for (var i = 0; i < 60; i++)
            {
                operation();
            }

            Thread.Sleep(250);
        }
    }
}
