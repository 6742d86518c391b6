namespace Hypervisor.Vmm.Demo.Stress;

/// <summary>
/// The host operation schedule of a stress run, drawn from its seed: for each mechanism that runs on a demo thread, the
/// same seed and layout give the same sequence of operations (what, where, how long), whatever the timing — so a failing
/// run's operations can be replayed from its seed. Each mechanism has its own stream (its own generator seeded from the
/// run's seed and the mechanism), so one mechanism running more or fewer operations does not shift another's.
/// </summary>
public sealed class StressSchedule
{
    private readonly int _seed;
    private readonly StressGuestLayout _layout;

    /// <summary>Creates the schedule of <paramref name="seed"/> over <paramref name="layout"/>.</summary>
    public StressSchedule(int seed, StressGuestLayout layout)
    {
        ArgumentNullException.ThrowIfNull(layout);
        _seed = seed;
        _layout = layout;
    }

    /// <summary>The mechanisms with a schedule (the others are the host's daemons, which pace themselves).</summary>
    public static IReadOnlyList<StressMechanismKind> Scheduled { get; } =
    [
        StressMechanismKind.Migration, StressMechanismKind.NumaBalancing, StressMechanismKind.ThpSplit, StressMechanismKind.ThpCollapse,
        StressMechanismKind.Fork, StressMechanismKind.MprotectStorm, StressMechanismKind.MemslotRemap, StressMechanismKind.DontNeed,
        StressMechanismKind.Dma,
    ];

    /// <summary>The operations of <paramref name="kind"/>, in order, without end.</summary>
    /// <exception cref="ArgumentException"><paramref name="kind"/> has no schedule (a daemon).</exception>
    public IEnumerable<StressOperation> For(StressMechanismKind kind)
    {
        if (!Scheduled.Contains(kind))
        {
            throw new ArgumentException($"{kind} is a host daemon and has no schedule: the scheduled mechanisms are {string.Join(", ", Scheduled)}", nameof(kind));
        }

        return Stream(kind);
    }

    /// <summary>The first <paramref name="count"/> operations of <paramref name="kind"/>.</summary>
    public IReadOnlyList<StressOperation> Take(StressMechanismKind kind, int count) => [.. For(kind).Take(count)];

    private IEnumerable<StressOperation> Stream(StressMechanismKind kind)
    {
        // A fixed mix of the run's seed and the mechanism: System.Random's seeded algorithm is stable across runs.
        var random = new Random(unchecked((_seed * 31) + ((int)kind * 0x2545F491)));
        for (var number = 1L; ; number++)
        {
            yield return Draw(kind, random, number, _layout);
        }
    }

    /// <summary>Draws operation <paramref name="number"/> of <paramref name="kind"/>.</summary>
    internal static StressOperation Draw(StressMechanismKind kind, Random random, long number, StressGuestLayout layout)
    {
        var chunk = random.Next(layout.HostChunks);
        const int pages = StressGuestLayout.ChunkPages;
        return kind switch
        {
            StressMechanismKind.Migration => new(kind, number, chunk, 0, pages, random.Next(2), 0, random.Next(5, 30)),
            StressMechanismKind.NumaBalancing => new(kind, number, 0, 0, random.Next(1024, 4096), 0, 0, random.Next(100, 300)),
            StressMechanismKind.ThpSplit => new(kind, number, chunk, random.Next(pages), 1, 0, 0, random.Next(10, 40)),
            StressMechanismKind.ThpCollapse => new(kind, number, 0, 0, random.Next(8192, 16384), 0, 0, random.Next(10, 40)),
            StressMechanismKind.Fork => new(kind, number, 0, 0, 0, 0, random.Next(2, 20), random.Next(20, 80)),
            StressMechanismKind.MprotectStorm => Region(kind, number, layout, random.Next(layout.Vcpus), random.Next(2, 30), random.Next(5, 40)),
            StressMechanismKind.MemslotRemap => new(kind, number, chunk, 0, pages, 0, 0, random.Next(50, 200)),
            StressMechanismKind.DontNeed => Range(kind, number, chunk, random, 1, 16, 0, random.Next(5, 30)),
            StressMechanismKind.Dma => DmaCopy(kind, number, random),
            _ => throw new ArgumentException($"{kind} has no schedule", nameof(kind)),
        };
    }

    /// <summary>A whole vCPU's region: its writes fault wherever it is in its pass.</summary>
    private static StressOperation Region(StressMechanismKind kind, long number, StressGuestLayout layout, int vcpu, int hold, int pause) =>
        new(kind, number, vcpu * layout.PagesPerVcpu / StressGuestLayout.ChunkPages, 0, layout.PagesPerVcpu, 0, hold, pause);

    /// <summary>
    /// A copy inside the DMA buffers' chunk: <see cref="StressOperation.Pages"/> pages (4, 8 or 16) from page
    /// <see cref="StressOperation.Page"/> of its first half (a multiple of 16, so the engine's cache sees the same buffers
    /// again) to the same page of its second half. <see cref="StressOperation.Chunk"/> is unused (0).
    /// </summary>
    private static StressOperation DmaCopy(StressMechanismKind kind, long number, Random random)
    {
        const int slots = StressGuestLayout.ChunkPages / 2 / DmaMechanism.MaxPages;
        var pages = DmaMechanism.MaxPages >> random.Next(3);
        return new StressOperation(kind, number, 0, random.Next(slots) * DmaMechanism.MaxPages, pages, 0, 0, random.Next(1, 6));
    }

    private static StressOperation Range(StressMechanismKind kind, long number, int chunk, Random random, int minPages, int maxPages, int hold, int pause)
    {
        var count = random.Next(minPages, maxPages + 1);
        var first = random.Next(StressGuestLayout.ChunkPages - count + 1);
        return new StressOperation(kind, number, chunk, first, count, 0, hold, pause);
    }
}
