namespace Hypervisor.Bench.GuestMmu;

/// <summary>
/// Brings code to its optimised tier before measuring. Benchmarks with an IterationSetup run one
/// invocation per iteration, so a short job would otherwise time tier-0 code: run the operation enough
/// times for tiered compilation to promote it, wait for the background compile, and run it again.
/// </summary>
internal static class EptWarmup
{
    public static void Run(Action operation)
    {
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
