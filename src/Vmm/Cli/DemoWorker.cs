using System.Runtime.ExceptionServices;
using Spectre.Console;
using Spectre.Console.Rendering;

namespace Hypervisor.Vmm.Cli;

/// <summary>
/// Runs a demonstration on a worker thread while the command's thread shows its progress: as plain lines (each new stage
/// once) or as a live view refreshed five times a second. An exception from the demonstration is rethrown on the
/// command's thread with its original stack.
/// </summary>
internal static class DemoWorker
{
    /// <summary>Runs <paramref name="run"/>, writing each new value of <paramref name="stage"/> as a line "STAGE ...".</summary>
    /// <param name="run">The demonstration.</param>
    /// <param name="stage">What runs now, in words (read from the command's thread).</param>
    /// <param name="output">Where the stage lines go.</param>
    /// <param name="threadName">The worker thread's name.</param>
    public static T RunPlain<T>(Func<T> run, Func<string> stage, TextWriter output, string threadName)
    {
        var shown = string.Empty;
        return RunOnWorker(run, threadName, worker =>
        {
            while (!worker.Join(100))
            {
                if (stage() != shown)
                {
                    shown = stage();
                    output.WriteLine($"{shown} ...");
                }
            }
        });
    }

    /// <summary>Runs <paramref name="run"/> under a live view of <paramref name="render"/>, cleared at the end.</summary>
    /// <param name="run">The demonstration.</param>
    /// <param name="render">The view now (called from the command's thread).</param>
    /// <param name="threadName">The worker thread's name.</param>
    public static T RunLive<T>(Func<T> run, Func<IRenderable> render, string threadName) =>
        RunOnWorker(run, threadName, worker => AnsiConsole.Live(render()).AutoClear(true).Start(live =>
        {
            while (!worker.Join(200))
            {
                live.UpdateTarget(render());
            }
        }));

    private static T RunOnWorker<T>(Func<T> run, string threadName, Action<Thread> watch)
    {
        T? result = default;
        Exception? failure = null;
        var worker = new Thread(() =>
        {
            try { result = run(); }
            catch (Exception exception) { failure = exception; }
        }) { IsBackground = true, Name = threadName };
        worker.Start();
        watch(worker);
        worker.Join();
        if (failure is not null)
        {
            ExceptionDispatchInfo.Capture(failure).Throw();
        }

        return result!;
    }
}
