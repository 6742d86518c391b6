using System.Diagnostics;
using CsCheck;

namespace Hypervisor.Vmm.Tests.Fuzz;

/// <summary>
/// Runs a property over inputs drawn from a CsCheck generator with the fixed seeds <c>firstSeed … firstSeed + count - 1</c>
/// (PCG stream <see cref="Stream"/>), so that every input is reproducible from its seed alone. The property runs on a
/// worker thread under a watchdog: an input that runs longer than the per-input limit is reported as a hang and the run
/// stops (the stuck thread is abandoned, as a hung input cannot be interrupted).
/// </summary>
internal static class FuzzDriver
{
    /// <summary>The PCG stream of every fuzz input.</summary>
    public const uint Stream = 0x5EED;

    /// <summary>A run stops after this many failures.</summary>
    public const int MaxFailures = 5;

    /// <summary>The input of <paramref name="gen"/> that seed <paramref name="seed"/> draws.</summary>
    public static T Generate<T>(Gen<T> gen, ulong seed)
    {
        ArgumentNullException.ThrowIfNull(gen);
        return gen.Generate(new PCG(Stream, seed), null!, out _);
    }

    /// <summary>Runs <paramref name="property"/> on <paramref name="count"/> inputs; it returns the input's outcome or throws for a failure.</summary>
    /// <param name="gen">The input generator.</param>
    /// <param name="property">Returns the outcome's name; any exception is a failure.</param>
    /// <param name="print">Prints an input for the failure report.</param>
    /// <param name="firstSeed">The seed of the first input.</param>
    /// <param name="count">Inputs to run.</param>
    /// <param name="perInputLimit">Wall-clock time after which an input counts as hung.</param>
    public static FuzzReport Run<T>(Gen<T> gen, Func<T, string> property, Func<T, string> print, ulong firstSeed, long count, TimeSpan perInputLimit)
    {
        ArgumentNullException.ThrowIfNull(gen);
        ArgumentNullException.ThrowIfNull(property);
        ArgumentNullException.ThrowIfNull(print);
        var report = new FuzzReport();
        var clock = Stopwatch.StartNew();
        long current = -1;
        long startedAt = 0;
        var worker = new Thread(() =>
        {
            for (var i = 0L; i < count && report.Failures.Count < MaxFailures; i++)
            {
                var seed = firstSeed + (ulong)i;
                Volatile.Write(ref startedAt, clock.ElapsedTicks);
                Volatile.Write(ref current, (long)seed);
                T input = default!;
                string outcome;
                try
                {
                    input = Generate(gen, seed);
                    outcome = property(input);
                }
#pragma warning disable CA1031 // Any exception escaping the property is the failure the fuzzer looks for.
                catch (Exception e)
#pragma warning restore CA1031
                {
                    lock (report)
                    {
                        report.Failures.Add(new FuzzFailure(seed, input is null ? "(generator failed)" : print(input), $"{e.GetType().Name}: {e.Message}{Environment.NewLine}{e.StackTrace}"));
                    }

                    outcome = "FAILURE " + e.GetType().Name;
                }

                lock (report)
                {
                    report.Inputs++;
                    report.Outcomes[outcome] = report.Outcomes.GetValueOrDefault(outcome) + 1;
                }
            }

            Volatile.Write(ref current, -1);
        })
        {
            IsBackground = true,
            Name = "fuzz worker",
        };
        worker.Start();
        while (!worker.Join(50))
        {
            var seed = Volatile.Read(ref current);
            var running = TimeSpan.FromSeconds((double)(clock.ElapsedTicks - Volatile.Read(ref startedAt)) / Stopwatch.Frequency);
            if (seed >= 0 && running > perInputLimit)
            {
                var input = print(Generate(gen, (ulong)seed));
                lock (report)
                {
                    report.Failures.Add(new FuzzFailure((ulong)seed, input, $"hang: still running after {running.TotalSeconds:F1} s (limit {perInputLimit.TotalSeconds:F1} s)"));
                    report.Elapsed = clock.Elapsed;
                    return report;
                }
            }
        }

        report.Elapsed = clock.Elapsed;
        return report;
    }
}
