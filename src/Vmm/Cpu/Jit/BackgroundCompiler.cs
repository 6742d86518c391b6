using System.Collections.Concurrent;

namespace Hypervisor.Vmm.Cpu.Jit;

/// <summary>
/// The thread that translates hot blocks while their vCPUs go on interpreting them (tiered compilation): one
/// background thread for the process, taking <see cref="BlockCompilation"/>s in the order they were queued.
/// </summary>
internal static class BackgroundCompiler
{
    private static readonly BlockingCollection<BlockCompilation> Queue = new(new ConcurrentQueue<BlockCompilation>());

    private static readonly Lazy<Thread> Worker = new(() =>
    {
        var thread = new Thread(Drain) { IsBackground = true, Name = "hv jit compiler" };
        thread.Start();
        return thread;
    });

    /// <summary>Queues <paramref name="compilation"/>; it runs on the compiler thread.</summary>
    public static void Enqueue(BlockCompilation compilation)
    {
        _ = Worker.Value;
        Queue.Add(compilation);
    }

    private static void Drain()
    {
        foreach (var compilation in Queue.GetConsumingEnumerable())
        {
            compilation.TryRun();
        }
    }
}
